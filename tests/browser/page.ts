// The test page's script (bundled by tests/browser/run.mjs with the chosen test files, each in
// its own chunk loaded in order). Obtains a device from navigator.gpu, turns on output poisoning,
// runs the uvu queue and POSTs every event to the runner: test starts, per-test results, console
// errors, uncaught errors, and a final `done` (or `fatal` when no device can be had). A file that
// fails to load counts as one failed test of that file.
import { engine, initWebDevice } from '../../engine/index.ts';

type Outcome = [errors: string | true, ran: number, skipped: number, total: number];
type Queue = (string | null | (() => Promise<Outcome>))[][];
interface UvuGlobals {
  UVU_DEFER: number;
  UVU_QUEUE: Queue;
  UVU_INDEX: number;
  /** Called by the patched uvu runner (see run.mjs) before each test and after each result. */
  UVU_START?: (suite: string, test: string) => void;
  UVU_REPORT?: (suite: string, test: string, err: unknown) => void;
  /** Set once this script runs: from then on it reports page errors (see run.mjs). */
  SSQL_TEST_PAGE?: boolean;
}
const g = globalThis as unknown as UvuGlobals;

let chain: Promise<unknown> = Promise.resolve();
/** Queue an event for the runner; events arrive in order. */
function post(event: Record<string, unknown>): void {
  const body = JSON.stringify(event);
  chain = chain.then(() => fetch('/event', { method: 'POST', body, headers: { 'content-type': 'application/json' } })).catch(() => undefined);
}

/** For uvu's deep-equality failures on arrays: the first element that differs. */
function firstDifference(err: Error): string {
  // uvu's Assertion names them `actual` and `expects`.
  const { actual, expects: expected } = err as Error & { actual?: unknown; expects?: unknown };
  if (!Array.isArray(actual) || !Array.isArray(expected)) return '';
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (!Object.is(actual[i], expected[i])) {
      return ` (first difference at [${i}] of ${actual.length}: ${String(actual[i])}, expected ${String(expected[i])})`;
    }
  }
  return '';
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const frames = (err.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).filter(Boolean);
    return `${err.name}: ${err.message}${firstDifference(err)}${frames.length ? `\n${frames.join('\n')}` : ''}`;
  }
  return String(err);
}

g.SSQL_TEST_PAGE = true;
addEventListener('error', (ev) => post({ type: 'error', message: errorText(ev.error ?? ev.message) }));
addEventListener('unhandledrejection', (ev) => post({ type: 'error', message: `unhandled rejection: ${errorText(ev.reason)}` }));
const consoleError = console.error.bind(console);
console.error = (...args: unknown[]) => {
  post({ type: 'console', message: args.map((a) => (a instanceof Error ? errorText(a) : String(a))).join(' ') });
  consoleError(...args);
};

export type TestFile = [name: string, load: () => Promise<unknown>];

export async function runTests(files: TestFile[]): Promise<void> {
  const t0 = performance.now();
  let file = '';
  g.UVU_DEFER = 1;
  g.UVU_QUEUE = [];
  g.UVU_START = (suite, test) => post({ type: 'start', file, test: suite ? `${suite} > ${test}` : test });
  g.UVU_REPORT = (suite, test, err) => post({
    type: 'result', file, test: suite ? `${suite} > ${test}` : test, ok: err === null, error: err === null ? undefined : errorText(err),
  });

  try {
    const e = await initWebDevice();
    e.poisonOutputs = true;
    const a = e.adapter;
    post({
      type: 'adapter', vendor: a.vendor, architecture: a.architecture, description: a.description,
      fallback: a.isFallbackAdapter, maxInvocations: a.limits.maxComputeInvocationsPerWorkgroup, userAgent: navigator.userAgent,
    });
  } catch (err) {
    post({ type: 'fatal', message: `no WebGPU device: ${errorText(err)}` });
    await chain;
    return;
  }

  // Load every file first (each registers its suites into its own queue group), as tests/run.ts does.
  const notLoaded = new Set<string>();
  for (const [index, [name, load]] of files.entries()) {
    g.UVU_INDEX = index;
    g.UVU_QUEUE.push([name]);
    try {
      await load();
    } catch (err) {
      notLoaded.add(name);
      post({ type: 'result', file: name, test: '(loading the file)', ok: false, error: errorText(err) });
    }
  }

  let passed = 0;
  let failed = 0;
  for (const group of g.UVU_QUEUE) {
    file = String(group[0]);
    const fileStart = performance.now();
    let filePassed = 0;
    let fileFailed = notLoaded.has(file) ? 1 : 0;
    for (const run of group.slice(1) as (() => Promise<Outcome>)[]) {
      try {
        const [, ran, , total] = await run();
        filePassed += ran;
        // A failing before/after hook ends a suite without reporting its tests: count them.
        fileFailed += total - ran;
      } catch (err) {
        fileFailed++;
        post({ type: 'result', file, test: '(suite)', ok: false, error: errorText(err) });
      }
    }
    try {
      await engine().sync();
    } catch (err) {
      fileFailed++;
      post({ type: 'result', file, test: '(GPU errors after the file)', ok: false, error: errorText(err) });
    }
    passed += filePassed;
    failed += fileFailed;
    post({ type: 'file', file, passed: filePassed, failed: fileFailed, ms: Math.round(performance.now() - fileStart) });
  }
  post({ type: 'done', passed, failed, ms: Math.round(performance.now() - t0) });
  await chain;
}
