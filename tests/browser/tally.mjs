// How the browser suite (tests/browser/run.mjs) counts what the test page (tests/browser/page.ts)
// reports. Plain JavaScript so the runner needs no TypeScript loader; its rules are tested in
// Node by tests/browser/tally.test.ts. The rules, each one a failure:
// - a failing test, a failing suite hook, GPU errors left after a file;
// - a test file that fails to load (counted even if the page's per-file total leaves it out);
// - an uncaught exception or unhandled rejection on the page, and any console.error call;
// - a chosen test file that never reports, and a finished run in which no test ran;
// - a run that breaks off (timeout, Chromium gone, no device): one failure for the break, plus
//   whatever the unfinished files reported before it.

export class Tally {
  passed = 0;
  failed = 0;
  /** Tests run inside test files (the passes and failures above, without page errors). */
  testsRun = 0;
  #expected;
  #completed = new Set();
  /** Per file: failing results seen, and every result (for files that never complete). */
  #failures = new Map();
  #results = new Map();

  /** @param {string[]} expectedFiles the test files the page was given (entry names). */
  constructor(expectedFiles) {
    this.#expected = expectedFiles;
  }

  /**
   * Count one event from the page. Returns the line to print for it, or null.
   * @param {{ type: string, [k: string]: unknown }} ev
   * @param {boolean} verbose also print passing tests
   */
  onEvent(ev, verbose = false) {
    switch (ev.type) {
      case 'result': {
        const list = this.#results.get(ev.file) ?? [];
        list.push(ev.ok);
        this.#results.set(ev.file, list);
        if (ev.ok) return verbose ? `✓ ${ev.file} > ${ev.test}` : null;
        this.#failures.set(ev.file, (this.#failures.get(ev.file) ?? 0) + 1);
        return `✘ ${ev.file} > ${ev.test}\n    ${String(ev.error).replaceAll('\n', '\n    ')}`;
      }
      case 'file': {
        this.#completed.add(ev.file);
        const failed = Math.max(ev.failed, this.#failures.get(ev.file) ?? 0);
        this.passed += ev.passed;
        this.failed += failed;
        this.testsRun += ev.passed + failed;
        return `${ev.file}: ${ev.passed} passed${failed ? `, ${failed} failed` : ''} (${(ev.ms / 1000).toFixed(1)} s)`;
      }
      case 'error':
        this.failed++;
        return `✘ uncaught on the page: ${ev.message}`;
      case 'console':
        this.failed++;
        return `✘ console.error on the page: ${ev.message}`;
      default:
        return null;
    }
  }

  /**
   * Close the count. `complete`: the page said it was done; otherwise the run broke off (the
   * caller prints why). Returns the lines to print for what this adds.
   */
  finish(complete) {
    const lines = [];
    for (const [file, results] of this.#results) {
      if (this.#completed.has(file)) continue;
      for (const ok of results) ok ? this.passed++ : this.failed++;
      this.testsRun += results.length;
    }
    if (!complete) {
      this.failed++;
      return lines;
    }
    for (const file of this.#expected) {
      if (this.#completed.has(file)) continue;
      this.failed++;
      lines.push(`✘ ${file}: the page never reported this file`);
    }
    if (this.testsRun === 0) {
      this.failed++;
      lines.push('✘ no test ran');
    }
    return lines;
  }
}
