// Headless Chromium for the browser suites (tests/browser/run.mjs, tests/browser/demo.mjs):
// finding the binary, launching it with the flags that give a WebGPU adapter (SwiftShader; see
// docs/environment.md), stopping it with its helper processes, and a screenshot over the
// DevTools protocol (needs `globalThis.WebSocket`: Node 22+, or Node 20 with
// --experimental-websocket).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function findChromium() {
  const list = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return list.find((p) => p && existsSync(p));
}

export const MISSING_CHROMIUM = 'Chromium is missing: install it (Debian/Ubuntu, as root: apt-get install -y chromium) or set CHROMIUM=/path/to/chrome';

/**
 * Launches headless Chromium at `url` in a fresh profile, in its own process group.
 * With `devtools`, the DevTools endpoint is opened on a free port (`chrome.devtoolsPort()`).
 * Returns { process, exited (null or a description), log() (its stderr tail), devtoolsPort(), stop() }.
 */
export function launchChromium(binary, url, { devtools = false, windowSize } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'ssql-chromium-'));
  const proc = spawn(binary, [
    '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    '--disable-gpu-sandbox', '--no-default-browser-check', `--user-data-dir=${profile}`,
    ...(devtools ? ['--remote-debugging-port=0', '--remote-allow-origins=*'] : []),
    ...(windowSize ? [`--window-size=${windowSize}`] : []),
    url,
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  let portResolve;
  const port = new Promise((resolve) => { portResolve = resolve; });
  const chrome = {
    process: proc,
    exited: null,
    log: () => stderr.split('\n').filter((l) => l.trim() && !/dbus|DBus/.test(l)).slice(-15).join('\n'),
    /** The DevTools port (rejects after `ms` without one). */
    devtoolsPort: (ms = 20000) => Promise.race([port, new Promise((_, reject) => setTimeout(() => reject(new Error('Chromium printed no DevTools port')), ms))]),
    async stop() {
      try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* already gone */ }
      if (!chrome.exited) await new Promise((resolve) => { proc.once('exit', resolve); setTimeout(resolve, 3000); });
      await new Promise((resolve) => setTimeout(resolve, 200));
      try { rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }); } catch { /* best effort */ }
    },
  };
  proc.stderr.on('data', (c) => {
    stderr = (stderr + c.toString()).slice(-20000);
    const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(stderr);
    if (m) portResolve(Number(m[1]));
  });
  proc.on('exit', (code, signal) => { chrome.exited = `exit ${code}${signal ? `, signal ${signal}` : ''}`; });
  return chrome;
}

/** A PNG screenshot (bytes) of the first page target whose URL starts with `urlPrefix`. */
export async function captureScreenshot(port, urlPrefix) {
  if (typeof WebSocket === 'undefined') throw new Error('no WebSocket client (Node 20 needs --experimental-websocket)');
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === 'page' && t.url.startsWith(urlPrefix));
  if (!page) throw new Error(`no page at ${urlPrefix} among ${targets.map((t) => t.url).join(', ')}`);
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`cannot connect to ${page.webSocketDebuggerUrl}`));
    });
    const reply = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('Page.captureScreenshot timed out')), 20000);
      ws.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data));
        if (msg.id !== 1) return;
        clearTimeout(timer);
        if (msg.error) reject(new Error(`Page.captureScreenshot: ${msg.error.message}`));
        else resolve(msg.result);
      };
      ws.send(JSON.stringify({ id: 1, method: 'Page.captureScreenshot', params: { format: 'png', captureBeyondViewport: true } }));
    });
    return Buffer.from(reply.data, 'base64');
  } finally {
    ws.close();
  }
}
