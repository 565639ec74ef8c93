// Node module hooks: run TypeScript through esbuild and import WGSL files as text.
// The browser bundle gets the same behaviour from esbuild's `ts` and `text` loaders, so source
// files are written once for both places.
import { readFile } from 'node:fs/promises';
import { transform } from 'esbuild';

export async function load(url, context, nextLoad) {
  if (url.endsWith('.ts')) {
    const source = await readFile(new URL(url), 'utf8');
    const { code } = await transform(source, {
      loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: new URL(url).pathname,
    });
    return { format: 'module', source: code, shortCircuit: true };
  }
  if (url.endsWith('.wgsl')) {
    const source = await readFile(new URL(url), 'utf8');
    return { format: 'module', source: `export default ${JSON.stringify(source)};`, shortCircuit: true };
  }
  return nextLoad(url, context);
}
