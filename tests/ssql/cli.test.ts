// The ssql command line, run as a user runs it (a child process): --help for each command,
// `compare` end to end on a tiny budget, and clear errors with a non-zero exit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseReportTable } from '../../ssql/report.ts';
import { METHODS, METHOD_NAMES } from '../../ssql/methods/registry.ts';

const bin = fileURLToPath(new URL('../../bin/ssql.mjs', import.meta.url));

function ssql(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 600_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('ssql with no command lists the commands and exits 2; --help exits 0', () => {
  const none = ssql();
  assert.is(none.code, 2);
  for (const c of ['pretrain', 'eval', 'compare', 'info']) assert.match(none.stdout, new RegExp(`\\n  ${c} `));
  assert.is(ssql('--help').code, 0);
});

test('every command has --help with its options', () => {
  const expect: Record<string, string[]> = {
    pretrain: ['--method', '--model', '--epochs', '--resume', '--out'],
    eval: ['--checkpoint', '--settings', '--protocol', '--knn', '--json'],
    compare: ['--subset', '--settings', '--eval-train', '--out'],
    info: ['--json'],
  };
  for (const [cmd, flags] of Object.entries(expect)) {
    const r = ssql(cmd, '--help');
    assert.is(r.code, 0, `${cmd} --help exit code`);
    assert.match(r.stdout, `usage: ssql ${cmd}`);
    for (const f of flags) assert.match(r.stdout, f, `${cmd} --help lists ${f}`);
  }
});

test('pretrain --help offers every registered method, each with its description', () => {
  const r = ssql('pretrain', '--help');
  assert.is(r.code, 0);
  assert.match(r.stdout, `--method <${METHOD_NAMES.join('|')}>`);
  const lines = r.stdout.split('\n').map((l) => l.trim());
  for (const m of METHODS) assert.ok(lines.some((l) => l.startsWith(m.name) && l.endsWith(m.description)), `the help lists '${m.name}  ${m.description}'`);
});

test('bad arguments and missing files give clear errors and a non-zero exit', () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['pretrain', '--epoch', '2'], /unknown option --epoch \(did you mean --epochs\?\)/],
    [['pretrain', '--method', 'byol2'], new RegExp(`--method must be one of ${METHOD_NAMES.join(', ')}; got 'byol2'`)],
    [['pretrain', '--batch', 'many'], /--batch must be a number, got 'many'/],
    [['pretrain', '--batch', '1'], /--batch must be an integer of at least 2, got 1/],
    [['pretrain', '--wbits', '9-2'], /--wbits must be within 2-8 with low <= high, got '9-2'/],
    [['pretrain', '--lr', '-1'], /--lr must be a finite number > 0, got -1/],
    [['pretrain', '--max-steps', '-1'], /--max-steps must be a positive integer, got -1/],
    [['pretrain', '--resume', '--force'], /--resume and --force contradict each other/],
    [['eval'], /--checkpoint PATH is required/],
    [['eval', '--checkpoint', '/nonexistent/ckpt.safetensors'], /checkpoint not found: \/nonexistent\/ckpt\.safetensors/],
    [['eval', '--checkpoint', __filename_safetensors()], /bogus\.safetensors: header length \d+ at offset 0 exceeds the file \(23 bytes\): truncated or not safetensors/],
    [['eval', '--checkpoint', '/nonexistent/ckpt.safetensors', '--settings', 'fp,4bit'], /bit setting '4bit' is not understood/],
    [['compare', '--settings', '9w1a'], /activation bit-width 1 is out of range|bit-width/],
    [['pretrain', '--data', 'mnist:/nonexistent', '--max-steps', '1'], /\/nonexistent: missing train-images-idx3-ubyte/],
  ];
  for (const [args, pattern] of cases) {
    const r = ssql(...args);
    assert.ok(r.code !== 0, `ssql ${args.join(' ')} exited 0`);
    assert.match(r.stderr, pattern, `ssql ${args.join(' ')}: ${r.stderr}`);
  }
});

/** A file that exists but is not a checkpoint. */
function __filename_safetensors(): string {
  const p = join(mkdtempSync(join(tmpdir(), 'ssql-cli-')), 'bogus.safetensors');
  writeFileSync(p, 'not a checkpoint at all');
  return p;
}

test('compare end to end on a tiny budget writes a parsable report and a well-formed SVG', () => {
  const out = mkdtempSync(join(tmpdir(), 'ssql-compare-'));
  const r = ssql('compare', '--model', 'tiny', '--proj-dim', '32', '--pred-hidden', '8', '--subset', '64', '--batch', '16',
    '--eval-train', '64', '--eval-test', '32', '--settings', 'fp,4w4a,2w2a', '--linear-epochs', '3', '--out', out, '--json');
  assert.is(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: Record<string, Record<string, number>>; untrained: Record<string, number>; adapter: string; wall_s: number; config: Record<string, unknown> };
  assert.equal(Object.keys(json.results), ['simsiam', 'ssql']);
  assert.equal(Object.keys(json.results.ssql), ['fp', '4w4a', '2w2a']);
  assert.ok(json.wall_s > 0 && json.adapter.length > 0);
  const fromFile = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  assert.equal(fromFile.results, json.results);
  const table = parseReportTable(readFileSync(join(out, 'report.md'), 'utf8'));
  assert.equal(table.models, ['untrained', 'simsiam', 'ssql']);
  assert.equal(Object.keys(table.rows), ['fp', '4w4a', '2w2a']);
  for (const [s, { means: [u, a, b], difference }] of Object.entries(table.rows)) {
    assert.ok(Math.abs(u - json.untrained[s]) < 0.006 && Math.abs(a - json.results.simsiam[s]) < 0.006 && Math.abs(b - json.results.ssql[s]) < 0.006, `row ${s}`);
    assert.ok(Math.abs(difference - (b - a)) < 0.011, `difference column of ${s}`);
    assert.ok([u, a, b].every((v) => v >= 0 && v <= 100));
  }
  const svg = readFileSync(join(out, 'accuracy.svg'), 'utf8');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok(svg.trim().endsWith('</svg>'));
  assert.is((svg.match(/<polyline /g) ?? []).length, 3, 'one line per model (the untrained backbone and each method)');
  // Well-formed: every element is closed, in order.
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (m[1]) assert.is(stack.pop(), m[2], `closing </${m[2]}>`);
    else if (!m[3]) stack.push(m[2]);
  }
  assert.equal(stack, [], 'unclosed elements');
  for (const m of ['simsiam', 'ssql']) assert.ok(existsSync(join(out, 'seed-0', m, 'checkpoint.safetensors')), `${m} checkpoint`);

  // eval on one of the checkpoints prints the same results shape.
  const ev = ssql('eval', '--checkpoint', join(out, 'seed-0', 'ssql', 'checkpoint.safetensors'), '--eval-train', '64', '--eval-test', '32', '--settings', 'fp,2w2a', '--linear-epochs', '3', '--json');
  assert.is(ev.code, 0, ev.stderr);
  const evj = JSON.parse(ev.stdout.trim().split('\n').pop()!) as { results: Record<string, number> };
  assert.equal(Object.keys(evj.results), ['fp', '2w2a']);
});

test.run();
