// The repository stands alone: no file points outside it (the notes a session keeps next to the
// checkout are not part of the project), and every `docs/NAME.md#anchor` that code or docs cite
// names a document and a heading that exist. Node only: it reads the tree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const SKIP = new Set(['node_modules', '.git', 'dist', 'runs', 'tmp']);
const TEXT = /\.(ts|mjs|js|wgsl|py|md|html|json|sh)$/;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name) || name.startsWith('.') && name !== '.ci') return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return TEXT.test(name) || dir.endsWith('.ci') ? [path] : [];
  });
}

/** GitHub-style anchors of a markdown file's headings. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+)$/gm)) {
    out.add(m[1].trim().toLowerCase().replace(/[^\w\s-]/g, '').replace(/\s/g, '-'));
  }
  return out;
}

const files = sources(root).filter((f) => !f.endsWith('tests/docs.test.ts'));

test('no file cites documents outside the repository', () => {
  const outside = /\.\.\/shared\/|SSQL-SPEC|\bSPEC §|ENGINE-NOTES|(?<![\w/])(BENCH|ENVIRONMENT)\.md/;
  const hits: string[] = [];
  for (const f of files) {
    readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      if (outside.test(line)) hits.push(`${relative(root, f)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.equal(hits, [], `cite docs/ instead:\n${hits.join('\n')}`);
});

test('every docs/ citation names an existing document and heading', () => {
  const cache = new Map<string, Set<string> | null>();
  const bad: string[] = [];
  let cited = 0;
  for (const f of files) {
    readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
      for (const m of line.matchAll(/docs\/([\w-]+\.md)(?:#([\w-]+))?/g)) {
        cited++;
        const doc = join(root, 'docs', m[1]);
        if (!cache.has(doc)) cache.set(doc, existsSync(doc) ? anchors(readFileSync(doc, 'utf8')) : null);
        const known = cache.get(doc);
        if (!known) bad.push(`${relative(root, f)}:${i + 1}: docs/${m[1]} does not exist`);
        else if (m[2] && !known.has(m[2])) bad.push(`${relative(root, f)}:${i + 1}: docs/${m[1]} has no heading #${m[2]}`);
      }
    });
  }
  assert.ok(cited > 10, `expected code to cite docs/ (found ${cited} citations)`);
  assert.equal(bad, [], bad.join('\n'));
});

test.run();
