// Node only: engine/tuning.ts's measured kernel choices kept in a JSON file between runs, keyed
// by adapter (vendor|architecture|description), so that an adapter is measured once. The browser
// bundle never imports this file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadTuningTable, setTuning, tunePending, tuningTable } from './tuning.ts';
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

/** A Node program's kernel tuning: `startNodeTuning()` loads the choices saved for this
 * adapter and turns measuring of new shapes on, unless $SSQL_TUNING is 'off' (the rules then
 * pick, as in the tests). The program calls `measure()` between steps (it measures what the last
 * step queued, then saves; nothing to do costs nothing) and `save()` before it ends (code that
 * calls the engine's `tunePending` itself, as feature extraction does, is saved then). Saving
 * never throws: a read-only home only costs the next run a re-measure, so it is reported once. */
export interface NodeTuning {
  readonly enabled: boolean;
  readonly file: string;
  /** Measure queued shapes; returns how many were measured (and saves when any were). */
  measure(): Promise<number>;
  save(): void;
}

export function startNodeTuning(file = defaultTuningFile(), warn: (message: string) => void = (m) => process.stderr.write(`${m}\n`)): NodeTuning {
  const enabled = process.env.SSQL_TUNING !== 'off';
  let warned = false;
  if (enabled) {
    try {
      loadTuningFile(file);
    } catch (e) {
      warn(`kernel tuning: ignoring ${file}: ${(e as Error).message}`);
      warned = true;
    }
  }
  setTuning(enabled);
  const save = () => {
    if (!enabled) return;
    try {
      saveTuningFile(file);
    } catch (e) {
      if (!warned) warn(`kernel tuning: could not save the measured choices to ${file}: ${(e as Error).message}`);
      warned = true;
    }
  };
  return {
    enabled,
    file,
    async measure() {
      if (!enabled) return 0;
      const measured = await tunePending();
      if (measured.length > 0) save();
      return measured.length;
    },
    save,
  };
}
