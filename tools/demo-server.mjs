#!/usr/bin/env node
// `npm run demo`: the live SSQL training demo (ssql/web/demo.html + demo.ts) on 127.0.0.1.
// Bundles ssql/web/demo.ts for browsers in memory (tools/build-web.mjs: ESM, WGSL as text, and the
// same no-Node-modules check, so the server refuses to start if one is reachable), then serves:
//   /                 ssql/web/demo.html (read on each request)
//   /demo.js(.map)    the bundle
//   /data/NAME        the four Fashion-MNIST gzip IDX files from /usr/share/datasets/fashion-mnist
//                     (Debian's dataset-fashion-mnist; SSQL_FASHION_MNIST_DIR overrides), nothing else
//   POST /report      only when started with `onReport` (tests/browser/demo.mjs): the page's
//                     autotest result, as JSON
// Usage: node tools/demo-server.mjs [--port N] (default 8080; 0 picks a free port)
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildBrowserBundle, root } from './build-web.mjs';

export const DATA_DIR = process.env.SSQL_FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
/** The only files /data/ serves. */
export const DATA_FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];

/** Builds the demo bundle; throws (naming the import chain) if a Node module reaches it. */
export async function buildDemo() {
  const result = await buildBrowserBundle({ entry: join(root, 'ssql/web/demo.ts'), outfile: join(root, 'dist/web/demo.js') });
  const files = new Map();
  for (const f of result.outputFiles) files.set(`/${f.path.split('/').pop()}`, f.contents);
  return files;
}

/**
 * Starts the demo server. `onReport(json)` enables POST /report. Resolves to
 * { url, port, close() } once listening.
 */
export async function startDemoServer({ port = 8080, host = '127.0.0.1', onReport } = {}) {
  const bundle = await buildDemo();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/report' && onReport) {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        res.writeHead(204).end();
        try { onReport(JSON.parse(body)); } catch (e) { console.log(`[demo] bad report: ${e.message}`); }
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/' || path === '/demo.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
        .end(readFileSync(join(root, 'ssql/web/demo.html')));
    } else if (bundle.has(path)) {
      const type = path.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8';
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(bundle.get(path));
    } else if (path.startsWith('/data/')) {
      // Exact names only: no directory traversal, no listing.
      const name = path.slice('/data/'.length);
      const file = join(DATA_DIR, name);
      if (!DATA_FILES.includes(name) || !existsSync(file)) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': statSync(file).size });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    close() {
      server.close();
      server.closeAllConnections?.();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--port');
  const port = i >= 0 ? Number(process.argv[i + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port must be an integer from 0 to 65535, got ${process.argv[i + 1]}`);
    process.exit(2);
  }
  try {
    const s = await startDemoServer({ port });
    const missing = DATA_FILES.filter((f) => !existsSync(join(DATA_DIR, f)));
    if (missing.length > 0) console.log(`note: ${DATA_DIR} lacks ${missing.join(', ')}; the page can still load IDX files you choose`);
    console.log(`SSQL demo: ${s.url}  (a browser with WebGPU; Ctrl-C stops the server)`);
  } catch (e) {
    const why = e.code === 'EADDRINUSE' ? `port ${port} is in use (choose another with --port N, or 0 for a free one)` : e.problems ? e.message : (e.stack ?? e);
    console.error(`demo server failed: ${why}`);
    process.exit(1);
  }
}
