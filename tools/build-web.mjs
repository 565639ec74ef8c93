#!/usr/bin/env node
// `npm run build:web`: the browser bundle of engine/ and ssql/ (ESM, WGSL inlined as text):
// ssql/web/index.ts -> dist/web/ssql-webgpu.js (+ .map).
// The build fails, writing nothing, if a Node module (`node:*` or a bare builtin such as fs,
// path, zlib) or the `webgpu` npm package (Dawn for Node) is reachable from the entry; it names
// the import chain that reaches it. tests/browser/run.mjs and tools/demo-server.mjs use the same
// check for their bundles.
import { mkdirSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Packages that must never reach a browser bundle, besides Node's builtins. */
const FORBIDDEN_PACKAGES = ['webgpu'];

const builtins = new Set(builtinModules.flatMap((m) => [m, m.split('/')[0]]));
function forbiddenReason(path) {
  if (path.startsWith('node:')) return 'a Node builtin module';
  const bare = path.startsWith('@') ? path.split('/').slice(0, 2).join('/') : path.split('/')[0];
  if (builtins.has(path) || builtins.has(bare)) return 'a Node builtin module';
  if (FORBIDDEN_PACKAGES.includes(bare)) return 'the Node-only npm package `webgpu` (Dawn)';
  return null;
}

/**
 * esbuild plugin: records every import of a Node module or of `webgpu` into `violations` (marking
 * it external so the build goes on and all offenders are found at once).
 */
export function noNodeModules(violations) {
  return {
    name: 'no-node-modules',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        const reason = forbiddenReason(args.path);
        if (!reason) return undefined;
        violations.push({ module: args.path, reason, importer: relative(root, args.importer) });
        return { path: args.path, external: true };
      });
    },
  };
}

/** A chain of imports from an entry point to `target`, from esbuild's metafile. */
function importChain(metafile, target) {
  const inputs = metafile.inputs;
  const entries = Object.values(metafile.outputs).map((o) => o.entryPoint).filter(Boolean);
  const prev = new Map(entries.map((e) => [e, null]));
  const queue = [...entries];
  while (queue.length > 0) {
    const cur = queue.shift();
    if (cur === target) break;
    for (const imp of inputs[cur]?.imports ?? []) {
      if (imp.external || prev.has(imp.path)) continue;
      prev.set(imp.path, cur);
      queue.push(imp.path);
    }
  }
  if (!prev.has(target)) return [target];
  const chain = [];
  for (let p = target; p !== null; p = prev.get(p)) chain.unshift(p);
  return chain;
}

/** Messages naming each forbidden import and the chain that reaches it; empty when clean. */
export function describeViolations(violations, metafile) {
  const seen = new Set();
  const lines = [];
  for (const v of violations) {
    const key = `${v.importer} ${v.module}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const chain = metafile ? importChain(metafile, v.importer) : [v.importer];
    lines.push(`  '${v.module}' (${v.reason}) imported by ${v.importer}` +
      (chain.length > 1 ? `\n    via ${chain.join(' -> ')}` : ''));
  }
  return lines;
}

/** Options shared by every browser bundle: ESM, browser platform, WGSL as text. */
export function browserOptions() {
  return {
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    loader: { '.wgsl': 'text' },
    absWorkingDir: root,
    metafile: true,
    logLevel: 'silent',
  };
}

/**
 * Bundles `entry` for browsers (browserOptions) in memory and fails, naming the import chains, if
 * a Node module or `webgpu` is reachable from it. Returns esbuild's result (outputFiles, metafile).
 * Used by buildWeb and by tools/demo-server.mjs (the demo page's bundle).
 */
export async function buildBrowserBundle({ entry, outfile, minify = false, sourcemap = 'linked' }) {
  const violations = [];
  const result = await esbuild.build({
    ...browserOptions(),
    entryPoints: [entry],
    outfile,
    sourcemap,
    minify,
    write: false,
    plugins: [noNodeModules(violations)],
  });
  const problems = describeViolations(violations, result.metafile);
  if (problems.length > 0) {
    const err = new Error(`the browser bundle must not contain Node modules:\n${problems.join('\n')}`);
    err.problems = problems;
    throw err;
  }
  return result;
}

export async function buildWeb({ outfile = join(root, 'dist/web/ssql-webgpu.js'), minify = false } = {}) {
  const result = await buildBrowserBundle({ entry: join(root, 'ssql/web/index.ts'), outfile, minify });
  mkdirSync(dirname(outfile), { recursive: true });
  for (const f of result.outputFiles) writeFileSync(f.path, f.contents);
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  return { outfile, bytes: js.contents.byteLength, inputs: Object.keys(result.metafile.inputs).length };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = performance.now();
  try {
    const r = await buildWeb({ minify: process.argv.includes('--minify') });
    console.log(`${relative(root, r.outfile)}: ${(r.bytes / 1024).toFixed(0)} KiB from ${r.inputs} files, ` +
      `no Node modules (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    console.error(`build:web failed: ${e.problems ? e.message : (e.stack ?? e)}`);
    process.exit(1);
  }
}
