// Node only: a training run's output directory (--out): OUT/checkpoint.safetensors, OUT/train.jsonl
// and, while a run uses it, OUT/.lock. Opening it checks everything about the directory before
// any training starts: it can be created and written, no other live run holds it, and a
// checkpoint already there is neither replaced without --force nor ignored without --resume.
// A lock left by a run that was killed (its pid is gone) is taken over with a warning, and
// temporary files such a run left half-written are removed.
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../cli-args.ts';
import { saveSafetensors, writeFileAtomic } from './files-node.ts';
import type { SafeTensor } from './safetensors.ts';

export interface RunDirectoryOptions {
  /** true: continue the checkpoint there (one must exist); 'if-present': continue it when there
   * is one, else start afresh (`compare` rerun); false: start afresh (no checkpoint there unless `force`). */
  resume: boolean | 'if-present';
  /** Start afresh even though a checkpoint is there, replacing it. */
  force: boolean;
  /** Where warnings go (stale lock taken over, stale temporary files removed). */
  warn: (message: string) => void;
}

interface LockHolder {
  pid: number;
  host: string;
  started: string;
}

const LOCK_FILE = '.lock';
/** writeFileAtomic's temporary names: `<file>.tmp-<pid>`. */
const TEMPORARY = /\.tmp-\d+$/;

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

/** Whether the lock's holder may still be running (unknown counts as running). */
function holderAlive(h: LockHolder): boolean {
  if (h.host !== hostname()) return true;
  if (h.pid === process.pid) return true;
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (e) {
    return errorCode(e) !== 'ESRCH';
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? { pid: h.pid, host: h.host, started: String(h.started) } : null;
  } catch {
    return null; // unreadable or half-written: its writer died between creating and filling it
  }
}

export class RunDirectory {
  readonly checkpoint: string;
  readonly log: string;
  readonly lock: string;
  /** Whether this run continues the checkpoint in the directory. */
  readonly resuming: boolean;
  private held = false;
  private readonly releaseAtExit = () => this.release();

  private constructor(readonly out: string, resuming: boolean) {
    this.checkpoint = join(out, 'checkpoint.safetensors');
    this.log = join(out, 'train.jsonl');
    this.lock = join(out, LOCK_FILE);
    this.resuming = resuming;
  }

  /** Create (if needed), lock and check `out`; UsageError naming --out (or --resume, --force)
   * for anything that would make the run fail later or lose an earlier result. */
  static open(out: string, opts: RunDirectoryOptions): RunDirectory {
    if (existsSync(out) && !statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a file, not a directory`);
    try {
      mkdirSync(out, { recursive: true });
    } catch (e) {
      throw new UsageError(`--out ${out}: cannot create the directory (${errorCode(e)})`);
    }
    const hasCheckpoint = existsSync(join(out, 'checkpoint.safetensors'));
    const dir = new RunDirectory(out, opts.resume === true || (opts.resume === 'if-present' && hasCheckpoint));
    dir.acquire(opts.warn);
    try {
      dir.removeTemporaries(opts.warn);
      if (opts.resume === true && !hasCheckpoint) throw new UsageError(`--resume: no checkpoint at ${dir.checkpoint} to continue`);
      if (!dir.resuming && hasCheckpoint && !opts.force) {
        throw new UsageError(`--out ${out} already holds a checkpoint (${dir.checkpoint}): pass --resume to continue that run, --force to start over and replace it, or another --out`);
      }
    } catch (e) {
      dir.release();
      throw e;
    }
    return dir;
  }

  private acquire(warn: (message: string) => void): void {
    const body = JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() }) + '\n';
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd: number;
      try {
        fd = openSync(this.lock, 'wx');
      } catch (e) {
        if (errorCode(e) !== 'EEXIST') throw new UsageError(`--out ${this.out} is not writable (${errorCode(e)} creating ${this.lock})`);
        const holder = readHolder(this.lock);
        if (holder && holderAlive(holder)) {
          throw new UsageError(
            `--out ${this.out} is in use by another run (pid ${holder.pid} on ${holder.host}, started ${holder.started}; lock file ${this.lock}): ` +
            'wait for it to finish or use another --out (if no run is using it, delete the lock file)',
          );
        }
        warn(`taking over ${this.lock}: ${holder ? `the run that held it (pid ${holder.pid}, started ${holder.started}) is gone` : 'it is unreadable'}`);
        try { unlinkSync(this.lock); } catch { /* another run removed it first; the next attempt decides */ }
        continue;
      }
      try {
        writeSync(fd, body);
      } catch (e) {
        closeSync(fd);
        unlinkSync(this.lock);
        throw new UsageError(`--out ${this.out} is not writable (${errorCode(e)} writing ${this.lock})`);
      }
      closeSync(fd);
      this.held = true;
      process.on('exit', this.releaseAtExit);
      return;
    }
    throw new UsageError(`--out ${this.out}: another run took ${this.lock} at the same moment`);
  }

  /** Temporary files of writes that a killed run never finished (this run holds the lock, so
   * no live writer owns them). */
  private removeTemporaries(warn: (message: string) => void): void {
    for (const name of readdirSync(this.out)) {
      if (!TEMPORARY.test(name)) continue;
      unlinkSync(join(this.out, name));
      warn(`removed ${join(this.out, name)}, a temporary file left by a run that stopped while writing it`);
    }
  }

  /** Starting afresh: drop the replaced run's checkpoint and log. */
  startFresh(): void {
    if (existsSync(this.checkpoint)) unlinkSync(this.checkpoint);
    writeFileAtomic(this.log, '');
  }

  /** Resuming at `globalStep`: drop log records of steps after the checkpoint (and a line cut
   * short by a kill), so the log holds each step once. Returns how many lines were dropped. */
  trimLog(globalStep: number): number {
    if (!existsSync(this.log)) return 0;
    const lines = readFileSync(this.log, 'utf8').split('\n').filter((l) => l.length > 0);
    const kept = lines.filter((line) => {
      try {
        const r = JSON.parse(line) as { step?: unknown };
        return typeof r.step === 'number' && r.step < globalStep;
      } catch {
        return false;
      }
    });
    if (kept.length !== lines.length) writeFileAtomic(this.log, kept.map((l) => `${l}\n`).join(''));
    return lines.length - kept.length;
  }

  appendLog(record: Record<string, unknown>): void {
    appendFileSync(this.log, JSON.stringify(record) + '\n');
  }

  saveCheckpoint(tensors: Record<string, SafeTensor>, metadata: Record<string, string>): void {
    saveSafetensors(this.checkpoint, tensors, metadata);
  }

  /** Remove the lock (if it is still this run's). Safe to call more than once. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    process.off('exit', this.releaseAtExit);
    const holder = readHolder(this.lock);
    if (holder?.pid === process.pid && holder.host === hostname()) {
      try { unlinkSync(this.lock); } catch { /* already gone */ }
    }
  }
}
