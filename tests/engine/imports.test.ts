// The engine's import graph stays acyclic, and code outside engine/ reaches it only through its
// entry points. Both are checked on the sources themselves (Node only: it reads files).
//
// - No cycle among the runtime imports of engine/**/*.ts: `import ... from`, `export ... from`,
//   side-effect `import '...'` and dynamic `import('...')`. Type-only imports (`import type`,
//   `export type`) are allowed to close a loop: TypeScript erases them, so they add no load order
//   and no runtime coupling (tensor.ts and scope.ts name each other's types, for example).
// - Files under ssql/ and bench/ import engine/ only through engine/index.ts or
//   engine/device-node.ts (the Node-only entry); type-only imports count here too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../../', import.meta.url)));

interface ImportRef {
  specifier: string;
  typeOnly: boolean;
  line: number;
}

/** The module specifiers a source file imports, with whether each import is type-only. */
function parseImports(source: string): ImportRef[] {
  // Blank out comments (keeping line breaks, so line numbers stay right).
  const text = source.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/\/\/[^\n]*/g, '');
  const refs: ImportRef[] = [];
  const lineOf = (index: number): number => text.slice(0, index).split('\n').length;
  const statement = /(^|[;\n])\s*(import|export)\s+(type\s+)?(?:[\w$*{}\s,]*?\s+from\s+)?(['"])([^'"\n]+)\4/g;
  for (const m of text.matchAll(statement)) {
    refs.push({ specifier: m[5], typeOnly: m[3] !== undefined, line: lineOf(m.index + m[0].search(/import|export/)) });
  }
  for (const m of text.matchAll(/\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g)) {
    refs.push({ specifier: m[2], typeOnly: false, line: lineOf(m.index) });
  }
  return refs;
}

/** Every cycle's files, one strongly connected component each (Tarjan), as `a -> b -> a`. */
function findCycles(graph: Map<string, string[]>): string[] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  // Name one concrete loop through each component: a shortest path back to its first file.
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0];
    const prev = new Map<string, string>();
    const queue = [start];
    let end: string | null = null;
    while (queue.length > 0 && end === null) {
      const v = queue.shift()!;
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) { end = v; break; }
        if (!prev.has(w)) { prev.set(w, v); queue.push(w); }
      }
    }
    const path = [start];
    for (let v = end!; v !== start; v = prev.get(v)!) path.splice(1, 0, v);
    return `${[...path, start].join(' -> ')} (${component.length} files in the loop's component)`;
  });
}

function sourceFiles(dir: string, exts: string[]): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sourceFiles(path, exts);
    return exts.some((e) => name.endsWith(e)) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The runtime import graph of engine/ (paths relative to the repository). */
function engineGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(join(root, 'engine'), ['.ts'])) {
    const deps = parseImports(readFileSync(file, 'utf8'))
      .filter((r) => !r.typeOnly && r.specifier.startsWith('.') && r.specifier.endsWith('.ts'))
      .map((r) => relative(root, resolve(dirname(file), r.specifier)));
    graph.set(relative(root, file), [...new Set(deps)]);
  }
  return graph;
}

test('the import parser sees value, type-only, side-effect and dynamic imports', () => {
  const refs = parseImports([
    "import { a } from './a.ts';",
    'import type { B } from "./b.ts";',
    "import {",
    "  c,",
    "  type D,",
    "} from './c.ts';",
    "export * from './d.ts';",
    "export type { E } from './e.ts';",
    "import './f.ts';",
    "// import { g } from './commented-out.ts';",
    "/* import { h } from './block-comment.ts'; */",
    "const m = await import('./g.ts');",
    "import source from '../shaders/x.wgsl';",
  ].join('\n'));
  assert.equal(refs.map((r) => [r.specifier, r.typeOnly, r.line]), [
    ['./a.ts', false, 1], ['./b.ts', true, 2], ['./c.ts', false, 3], ['./d.ts', false, 7],
    ['./e.ts', true, 8], ['./f.ts', false, 9], ['../shaders/x.wgsl', false, 13], ['./g.ts', false, 12],
  ]);
});

test('the cycle finder names a loop and ignores a diamond', () => {
  const graph = new Map([
    ['a', ['b', 'c']], ['b', ['d']], ['c', ['d']], ['d', []], // diamond: no cycle
    ['x', ['y']], ['y', ['z']], ['z', ['x', 'd']], // x -> y -> z -> x
    ['s', ['s']], // a file importing itself
  ]);
  assert.equal(findCycles(graph).map((c) => c.split(' (')[0]).sort(), ['s -> s', 'x -> y -> z -> x']);
});

test('engine/ has no import cycle (type-only imports aside)', () => {
  const graph = engineGraph();
  assert.ok(graph.size > 20, `read only ${graph.size} files under engine/`);
  assert.ok(graph.get('engine/ops/elementwise.ts')?.includes('engine/launch.ts'), 'the graph holds known edges');
  const cycles = findCycles(graph);
  assert.equal(cycles, [], `import cycles in engine/:\n  ${cycles.join('\n  ')}`);
});

test('the engine core imports no op: shapes.ts nothing, autograd.ts and tensor.ts nothing under ops/', () => {
  const graph = engineGraph();
  assert.equal(graph.get('engine/shapes.ts'), []);
  assert.equal(graph.get('engine/kernels.ts'), []);
  for (const core of ['engine/autograd.ts', 'engine/tensor.ts', 'engine/launch.ts', 'engine/device.ts', 'engine/scope.ts']) {
    const seen = new Set<string>();
    const walk = (f: string): void => {
      for (const d of graph.get(f) ?? []) if (!seen.has(d)) { seen.add(d); walk(d); }
    };
    walk(core);
    const ops = [...seen].filter((f) => f.startsWith('engine/ops/') || f.startsWith('engine/nn/'));
    assert.equal(ops, [], `${core} reaches ${ops.join(', ')}`);
  }
});

test('ssql/ and bench/ reach engine/ only through engine/index.ts or engine/device-node.ts', () => {
  const allowed = new Set(['engine/index.ts', 'engine/device-node.ts']);
  const offending: string[] = [];
  let engineImports = 0;
  for (const dir of ['ssql', 'bench']) {
    for (const file of sourceFiles(join(root, dir), ['.ts', '.mjs', '.js'])) {
      for (const r of parseImports(readFileSync(file, 'utf8'))) {
        if (!r.specifier.startsWith('.')) continue;
        const target = relative(root, resolve(dirname(file), r.specifier));
        if (!target.startsWith('engine/')) continue;
        engineImports++;
        if (!allowed.has(target)) offending.push(`${relative(root, file)}:${r.line} imports ${r.specifier}`);
      }
    }
  }
  assert.ok(engineImports > 10, `found only ${engineImports} imports of engine/ under ssql/ and bench/`);
  assert.equal(offending, [], `deep imports into engine/ (use engine/index.ts):\n  ${offending.join('\n  ')}`);
});

test.run();
