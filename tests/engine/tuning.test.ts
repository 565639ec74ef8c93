// The tuner's decision (pickMeasured: the rule's pick stays unless another candidate is clearly
// faster) on synthetic run times, and tunePending's measuring order and failure handling on a
// synthetic op whose candidates only record that they ran.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TUNING_MARGIN, choose, clearTuning, pickMeasured, setTuning, tunePending, tuningTable } from '../../engine/tuning.ts';
import type { Candidate } from '../../engine/tuning.ts';

const m = TUNING_MARGIN;
/** Five runs around `ms` (the fastest exactly `ms`, the median 10% above it). */
const runsAt = (ms: number) => [ms * 1.2, ms, ms * 1.1, ms * 1.3, ms * 1.1];

test('pickMeasured: the rule\'s pick stays when another is faster by less than the margin', () => {
  const slightly = 1 - m / 2;
  assert.is(pickMeasured([runsAt(10), runsAt(10 * slightly), runsAt(12)], 0), 0);
  assert.is(pickMeasured([runsAt(10 * slightly), runsAt(10)], 1), 1);
});

test('pickMeasured: a candidate clearly faster in its fastest and its median run wins', () => {
  assert.is(pickMeasured([runsAt(10), runsAt(5), runsAt(12)], 0), 1);
  assert.is(pickMeasured([runsAt(10), runsAt(12), runsAt(10 * (1 - m) - 0.01)], 0), 2, 'just past the margin is enough');
});

test('pickMeasured: a fastest run past the margin without a median past it does not replace the rule', () => {
  const lucky = [5, 20, 20, 20, 20];
  assert.is(pickMeasured([runsAt(10), lucky], 0), 0, 'a slower median');
  const medianClose = [5, 10, 10.5, 10.5, 11];
  assert.is(pickMeasured([runsAt(10), medianClose], 0), 0, 'a median lower by less than the margin');
});

test('pickMeasured: among candidates that beat the rule, the fastest wins; exact ties the first listed', () => {
  assert.is(pickMeasured([runsAt(10), runsAt(6), runsAt(6 * (1 - m / 2))], 0), 2);
  assert.is(pickMeasured([runsAt(10), runsAt(3), runsAt(6)], 0), 1);
  assert.is(pickMeasured([runsAt(10), runsAt(5), runsAt(5)], 0), 1);
  assert.is(pickMeasured([runsAt(5), runsAt(5)], 1), 1, 'a tie with the rule keeps the rule');
});

test('pickMeasured: among those that beat the rule, a lucky fastest run with a slow median does not win', () => {
  const lucky = [5, 15, 15, 15, 15];
  assert.is(pickMeasured([runsAt(20), lucky, runsAt(7)], 0), 2);
});

test('pickMeasured: one candidate, unmeasured ones, no rule measured', () => {
  assert.is(pickMeasured([runsAt(7)], 0), 0);
  assert.is(pickMeasured([[], runsAt(7), runsAt(3)], 1), 2, 'unmeasured candidates never win');
  // The rule's pick unmeasured (its run failed): the fastest of the rest.
  assert.is(pickMeasured([runsAt(7), [], runsAt(3)], 1), 2);
  assert.is(pickMeasured([runsAt(3), [], runsAt(3 * (1 - m / 2))], 1), 2);
  assert.is(pickMeasured([[], []], 0), -1);
});

interface Fake { id: string; fails?: boolean }

test('tunePending: one warm-up run each, then rounds over every candidate; the choice is kept', async () => {
  clearTuning();
  const ran: string[] = [];
  const candidates: Candidate<Fake>[] = ['a', 'b', 'c'].map((id) => ({ name: `fake ${id}`, config: { id } }));
  let disposed = 0;
  const bench = () => ({ run: (c: Fake) => { ran.push(c.id); }, dispose: () => { disposed++; } });
  try {
    setTuning(true);
    assert.is(choose('test.fake', 'S1', candidates, 1, bench).name, 'fake b', 'the rule\'s pick runs until measured');
    const [r] = await tunePending(3);
    assert.is(ran.join(''), 'abc' + 'abc'.repeat(3));
    assert.is(disposed, 1);
    assert.is(r.rule, 'fake b');
    assert.equal(r.times.map((t) => t.name).sort(), ['fake a', 'fake b', 'fake c']);
    for (const t of r.times) assert.ok(t.ms <= t.median_ms, `${t.name}: fastest ${t.ms} <= median ${t.median_ms}`);
    assert.equal(r.failed, []);
    const saved = Object.values(tuningTable()).flatMap((e) => Object.values(e));
    assert.equal(saved, [r.choice]);
    assert.is(choose('test.fake', 'S1', candidates, 1, bench).name, r.choice);
  } finally {
    setTuning(false);
    clearTuning();
  }
});

test('tunePending: a candidate whose run fails is left out with a warning; all failing throws', async () => {
  clearTuning();
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (msg: string) => { warnings.push(msg); };
  const candidates: Candidate<Fake>[] = [{ name: 'fake ok', config: { id: 'ok' } }, { name: 'fake bad', config: { id: 'bad', fails: true } }];
  const bench = () => ({ run: (c: Fake) => { if (c.fails) throw new Error('no such pipeline'); }, dispose: () => {} });
  try {
    setTuning(true);
    // The failing candidate is the rule's pick: the one that runs wins.
    choose('test.fake', 'S2', candidates, 1, bench);
    const [r] = await tunePending(2);
    assert.is(r.choice, 'fake ok');
    assert.equal(r.times.map((t) => t.name), ['fake ok']);
    assert.equal(r.failed, [{ name: 'fake bad', error: 'no such pipeline' }]);
    assert.is(warnings.length, 1);
    assert.match(warnings[0], /test\.fake S2: left out 'fake bad'.*no such pipeline/);

    const bad = candidates.map((c) => ({ ...c, config: { ...c.config, fails: true } }));
    choose('test.fake', 'S3', bad, 0, bench);
    let thrown: unknown = null;
    try {
      await tunePending(2);
    } catch (e) {
      thrown = e;
    }
    assert.match(String(thrown), /no such pipeline/);
  } finally {
    console.warn = warn;
    setTuning(false);
    clearTuning();
  }
});

test.run();
