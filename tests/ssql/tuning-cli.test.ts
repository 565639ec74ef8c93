// Kernel tuning in the commands (engine/tuning-node.ts): `ssql pretrain` measures the kernel
// variants of the shapes its first step meets, keeps the choices in the tuning file (keyed by
// adapter), and a second run starts from that file instead of measuring again. The rest of the
// suite runs with SSQL_TUNING=off (tests/run.ts), so this file turns it on for its commands.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { engine } from '../../engine/index.ts';

const bin = fileURLToPath(new URL('../../bin/ssql.mjs', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'ssql-tuning-'));
const file = join(work, 'tuning.json');

function pretrain(out: string, env: Record<string, string>): { code: number; stderr: string } {
  const args = ['pretrain', '--method', 'ssql', '--model', 'tiny', '--proj-dim', '16', '--pred-hidden', '8', '--batch', '16', '--subset', '64', '--max-steps', '2', '--out', join(work, out)];
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, SSQL_TUNING_FILE: file, ...env } });
  return { code: r.status ?? -1, stderr: r.stderr };
}

test('pretrain measures new kernel shapes once and keeps the choices per adapter; SSQL_TUNING=off measures nothing', () => {
  const off = pretrain('off', { SSQL_TUNING: 'off' });
  assert.is(off.code, 0, off.stderr);
  assert.not.ok(existsSync(file), 'tuning off: no tuning file');

  const first = pretrain('on', { SSQL_TUNING: 'on' });
  assert.is(first.code, 0, first.stderr);
  const table = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, string>>;
  const a = engine().adapter;
  const mine = table[`${a.vendor}|${a.architecture}|${a.description}`];
  assert.ok(mine, `the file is keyed by this adapter: ${Object.keys(table).join(', ')}`);
  const keys = Object.keys(mine);
  assert.ok(keys.some((k) => k.startsWith('conv2d.forward ')), `conv forward shapes measured: ${keys.join('; ')}`);
  assert.ok(keys.some((k) => k.startsWith('conv2d.weightGrad ')), `conv weight-gradient shapes measured: ${keys.join('; ')}`);

  // A second run reads the file: planting a choice that does not exist shows it is read (it is
  // not a candidate, so the op measures that shape again and the file is repaired).
  const planted = Object.keys(mine)[0];
  writeFileSync(file, JSON.stringify({ ...table, [`${a.vendor}|${a.architecture}|${a.description}`]: { ...mine, [planted]: 'no-such-variant' }, 'other|adapter|kept': { x: 'y' } }));
  const second = pretrain('again', { SSQL_TUNING: 'on' });
  assert.is(second.code, 0, second.stderr);
  const after = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Record<string, string>>;
  assert.equal(after['other|adapter|kept'], { x: 'y' }, 'other adapters\' choices are kept');
  assert.is.not(after[`${a.vendor}|${a.architecture}|${a.description}`][planted], 'no-such-variant');

  writeFileSync(file, 'not json');
  const bad = pretrain('bad', { SSQL_TUNING: 'on' });
  assert.is(bad.code, 0, bad.stderr);
  assert.match(bad.stderr, /kernel tuning: ignoring .*tuning\.json: tuning file .*: not JSON/);
});

test.run();
