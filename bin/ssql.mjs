#!/usr/bin/env node
// `npx ssql ...`: runs ssql/cli.ts through the project's TypeScript loader.
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
register(pathToFileURL(join(root, 'tools/ts-hooks.mjs')));
const { main } = await import(pathToFileURL(join(root, 'ssql/cli.ts')).href);
process.exit(await main(process.argv.slice(2)));
