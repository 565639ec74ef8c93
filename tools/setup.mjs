#!/usr/bin/env node
// Dependency-free set-up, run before `npm start` and `npm test`.
// 1. Installs npm packages when they are missing.
// 2. On Linux, when no WebGPU adapter can be created, installs Mesa's software Vulkan driver
//    (lavapipe, Mesa 24 or newer; bookworm takes it from backports) when running as root, or
//    stops with the exact command to run.
// 3. --dataset: installs Debian's Fashion-MNIST package when it is missing (same rules).
// 4. --browser: installs Debian's chromium when no Chromium is found (same rules; npm test's
//    browser suite needs it).
// With everything present it only probes the adapter (about 0.5 s).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (msg) => process.stderr.write(`[setup] ${msg}\n`);

function fail(msg) {
  process.stderr.write(`\n[setup] ${msg}\n\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status === 0;
}

// --- npm packages ----------------------------------------------------------------------------
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const wanted = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
const missing = wanted.filter((name) => !existsSync(join(root, 'node_modules', name, 'package.json')));
if (missing.length > 0) {
  log(`installing npm packages (missing: ${missing.join(', ')})`);
  const args = existsSync(join(root, 'package-lock.json')) ? ['ci'] : ['install'];
  // onnxruntime-node (a test dependency) ships its CPU binaries in the package; its install script
  // would only try to download GPU parts, which fails offline, so it is told to skip them.
  const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
  if (!run('npm', [...args, '--no-audit', '--no-fund'], { env })) fail('npm install failed; see the output above.');
}

// --- WebGPU adapter ----------------------------------------------------------------------------
// The probe runs in a child process: a missing driver can crash Dawn, and we want a clean answer.
const probeSource = `
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) { console.log('NO_ADAPTER'); process.exit(0); }
console.log('ADAPTER ' + (adapter.info.description || adapter.info.vendor || 'unknown'));
process.exit(0);
`;
function probeAdapter() {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probeSource], {
    cwd: root, encoding: 'utf8', timeout: 60_000,
  });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('ADAPTER '));
  return line ? line.slice('ADAPTER '.length) : null;
}

const backportsCommand = [
  `printf 'Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > /etc/apt/sources.list.d/backports.sources`,
  'apt-get update',
  'DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
];
const plainCommand = ['apt-get update', 'DEBIAN_FRONTEND=noninteractive apt-get install -y mesa-vulkan-drivers'];

function osRelease() {
  try { return readFileSync('/etc/os-release', 'utf8'); } catch { return ''; }
}

let adapter = probeAdapter();
if (!adapter) {
  if (process.platform !== 'linux') {
    fail('No WebGPU adapter could be created. On this platform Dawn needs a GPU driver (Metal on macOS, D3D12 on Windows).');
  }
  const bookworm = /VERSION_CODENAME=bookworm/.test(osRelease());
  const steps = bookworm ? backportsCommand : plainCommand;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    fail('No WebGPU adapter could be created: Mesa\'s software Vulkan driver (lavapipe, Mesa 24+) is missing.\n' +
      'Install it as root, then run this command again:\n\n  sudo sh -c "' + steps.join(' && ').replace(/"/g, '\\"') + '"');
  }
  log(`no WebGPU adapter; installing Mesa's software Vulkan driver${bookworm ? ' from bookworm-backports' : ''}`);
  if (!run('sh', ['-c', steps.join(' && ')])) fail('installing mesa-vulkan-drivers failed; see the output above.');
  adapter = probeAdapter();
  if (!adapter) fail('mesa-vulkan-drivers is installed but still no WebGPU adapter: Dawn needs Mesa 24 or newer (check `dpkg -l mesa-vulkan-drivers`).');
}
log(`WebGPU adapter: ${adapter}`);

// --- Fashion-MNIST (npm start trains on it; the training tests use a subset) -----------------
const FASHION_MNIST = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';
if (process.argv.includes('--dataset') && !existsSync(FASHION_MNIST)) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const cmd = 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y dataset-fashion-mnist';
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    fail('Fashion-MNIST is missing: put the four IDX files in /usr/share/datasets/fashion-mnist/ (or pass --data mnist:DIR to the ssql CLI).');
  }
  if (!isRoot) fail(`Fashion-MNIST is missing. Install Debian's package as root, then run this command again:\n\n  sudo sh -c "${cmd}"`);
  log("Fashion-MNIST missing; installing Debian's dataset-fashion-mnist");
  if (!run('sh', ['-c', cmd]) || !existsSync(FASHION_MNIST)) fail('installing dataset-fashion-mnist failed; see the output above.');
}

// --- Chromium (npm test's browser suite: the engine tests on the browser's WebGPU adapter) -----
const CHROMIUM_PATHS = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
const findChromium = () => CHROMIUM_PATHS.find((p) => p && existsSync(p));
if (process.argv.includes('--browser') && !findChromium()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const cmd = 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium';
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    fail('Chromium is missing (the browser tests need it): install Chromium or Chrome and set CHROMIUM=/path/to/it, or run `npm test -- --no-browser`.');
  }
  if (!isRoot) fail(`Chromium is missing (the browser tests need it). Install Debian's package as root, then run this command again:\n\n  sudo sh -c "${cmd}"\n\n(or run \`npm test -- --no-browser\` to skip the browser suite)`);
  log("Chromium missing; installing Debian's chromium package");
  if (!run('sh', ['-c', cmd]) || !findChromium()) fail('installing chromium failed; see the output above.');
}
if (process.argv.includes('--browser')) log(`Chromium: ${findChromium()}`);
