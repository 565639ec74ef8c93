// `node --import ./tools/ts-loader.mjs file.ts` runs TypeScript sources directly.
import { register } from 'node:module';
register('./ts-hooks.mjs', import.meta.url);
process.setSourceMapsEnabled(true);
