// Types for tests/browser/tally.mjs (plain JavaScript, so the runner needs no loader).
export interface PageEvent {
  type: string;
  [field: string]: unknown;
}

export declare class Tally {
  passed: number;
  failed: number;
  testsRun: number;
  constructor(expectedFiles: string[]);
  onEvent(ev: PageEvent, verbose?: boolean): string | null;
  finish(complete: boolean): string[];
}
