// The browser suite's counting rules (tests/browser/tally.mjs), fed the events the test page
// (tests/browser/page.ts) posts. Runs in the Node suite: no browser needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tally } from './tally.mjs';

const result = (file: string, name: string, ok: boolean) => ({ type: 'result', file, test: name, ok, error: ok ? undefined : `Error: ${name} broke` });
const fileDone = (file: string, passed: number, failed: number) => ({ type: 'file', file, passed, failed, ms: 10 });

test('passing files add up; a finished run with every file reported and tests run passes', () => {
  const t = new Tally(['engine/a.test.ts', 'engine/b.test.ts']);
  t.onEvent(result('engine/a.test.ts', 'x', true));
  assert.is(t.onEvent(fileDone('engine/a.test.ts', 1, 0)), 'engine/a.test.ts: 1 passed (0.0 s)');
  t.onEvent(fileDone('engine/b.test.ts', 2, 0));
  assert.equal(t.finish(true), []);
  assert.equal([t.passed, t.failed, t.testsRun], [3, 0, 3]);
});

test('a file that fails to load is a failure even when the page reports its file with 0 failed', () => {
  const t = new Tally(['engine/broken.test.ts', 'engine/ok.test.ts']);
  const line = t.onEvent(result('engine/broken.test.ts', '(loading the file)', false));
  assert.match(line ?? '', /^✘ engine\/broken\.test\.ts > \(loading the file\)\n {4}Error: \(loading the file\) broke/);
  assert.is(t.onEvent(fileDone('engine/broken.test.ts', 0, 0)), 'engine/broken.test.ts: 0 passed, 1 failed (0.0 s)');
  t.onEvent(fileDone('engine/ok.test.ts', 4, 0));
  t.finish(true);
  assert.equal([t.passed, t.failed], [4, 1]);
});

test('failures the page counted without a result event (a failing hook) are kept', () => {
  const t = new Tally(['engine/h.test.ts']);
  t.onEvent(fileDone('engine/h.test.ts', 1, 3));
  t.finish(true);
  assert.equal([t.passed, t.failed], [1, 3]);
});

test('uncaught page errors, unhandled rejections and console errors each count as a failure', () => {
  const t = new Tally(['engine/a.test.ts']);
  assert.is(t.onEvent({ type: 'error', message: 'Error: boom' }), '✘ uncaught on the page: Error: boom');
  t.onEvent({ type: 'error', message: 'unhandled rejection: Error: later' });
  assert.is(t.onEvent({ type: 'console', message: 'something failed' }), '✘ console.error on the page: something failed');
  t.onEvent(fileDone('engine/a.test.ts', 5, 0));
  t.finish(true);
  assert.equal([t.passed, t.failed], [5, 3]);
});

test('zero tests run is a failure; so is a chosen file that never reports', () => {
  const empty = new Tally(['engine/empty.test.ts']);
  empty.onEvent(fileDone('engine/empty.test.ts', 0, 0));
  assert.equal(empty.finish(true), ['✘ no test ran']);
  assert.equal([empty.passed, empty.failed], [0, 1]);
  const none = new Tally([]);
  assert.equal(none.finish(true), ['✘ no test ran']);
  assert.is(none.failed, 1);
  const missing = new Tally(['engine/a.test.ts', 'engine/lost.test.ts']);
  missing.onEvent(fileDone('engine/a.test.ts', 2, 0));
  assert.equal(missing.finish(true), ['✘ engine/lost.test.ts: the page never reported this file']);
  assert.equal([missing.passed, missing.failed], [2, 1]);
});

test('a run that breaks off counts what the unfinished file reported, plus the break', () => {
  const t = new Tally(['engine/a.test.ts', 'engine/b.test.ts']);
  t.onEvent(fileDone('engine/a.test.ts', 2, 0));
  t.onEvent(result('engine/b.test.ts', 'one', true));
  t.onEvent(result('engine/b.test.ts', 'two', false));
  assert.equal(t.finish(false), []);
  assert.equal([t.passed, t.failed], [3, 2]);
});

test('passing tests print only when verbose; events the runner handles itself are ignored', () => {
  const t = new Tally(['engine/a.test.ts']);
  assert.is(t.onEvent(result('engine/a.test.ts', 'x', true)), null);
  assert.is(t.onEvent(result('engine/a.test.ts', 'y', true), true), '✓ engine/a.test.ts > y');
  for (const type of ['adapter', 'start', 'done', 'fatal']) assert.is(t.onEvent({ type }), null);
  assert.equal([t.passed, t.failed], [0, 0]);
});

test.run();
