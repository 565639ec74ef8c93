// Node only: engine/tuning.ts's measured kernel choices kept in a JSON file between runs, keyed
// by adapter (vendor|architecture|description), so that an adapter is measured once. The browser
// bundle never imports this file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadTuningTable, tuningTable } from './tuning.ts';
import type { TuningTable } from './tuning.ts';

/** $SSQL_TUNING_FILE, else ~/.cache/ssql-webgpu/tuning.json. */
export function defaultTuningFile(): string {
  return process.env.SSQL_TUNING_FILE ?? join(homedir(), '.cache', 'ssql-webgpu', 'tuning.json');
}

/** Add the choices saved in `file` (none if it does not exist); returns how many it held. */
export function loadTuningFile(file = defaultTuningFile()): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let table: unknown;
  try {
    table = JSON.parse(text);
  } catch (e) {
    throw new Error(`tuning file ${file}: not JSON (${(e as Error).message})`);
  }
  if (typeof table !== 'object' || table === null || Array.isArray(table)) {
    throw new Error(`tuning file ${file}: expected an object of adapter -> { "op shape": choice }`);
  }
  let count = 0;
  for (const [adapter, entries] of Object.entries(table)) {
    if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) {
      throw new Error(`tuning file ${file}: adapter '${adapter}' holds ${JSON.stringify(entries)}, expected an object`);
    }
    for (const [key, choice] of Object.entries(entries as Record<string, unknown>)) {
      if (typeof choice !== 'string') throw new Error(`tuning file ${file}: '${key}' of adapter '${adapter}' is ${JSON.stringify(choice)}, expected a string`);
      count++;
    }
  }
  loadTuningTable(table as TuningTable);
  return count;
}

/** Write every choice known to this process, merged over what `file` holds; returns the path. */
export function saveTuningFile(file = defaultTuningFile()): string {
  loadTuningFile(file); // keep other adapters' choices (this process's own win)
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(tuningTable(), null, 2)}\n`);
  renameSync(tmp, file);
  return file;
}
