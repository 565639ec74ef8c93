// Runs in headless Chromium (bench/browser.ts serves it): times the shared kernel cases on the
// browser's WebGPU adapter and POSTs the results back.
import { initWebDevice } from '../engine/index.ts';
import { kernelCases, timeCase } from './kernel-cases.ts';

const params = new URLSearchParams(location.search);
const quick = params.get('quick') === '1';
const runs = Number(params.get('runs') ?? 3);
const only = params.get('only') ?? undefined;

async function main(): Promise<void> {
  const e = await initWebDevice();
  const records = [];
  for (const c of kernelCases(quick, only)) records.push({ name: c.name, ...(await timeCase(c, runs)) });
  await fetch('/result', { method: 'POST', body: JSON.stringify({ adapter: `${e.adapter.vendor} ${e.adapter.architecture} ${e.adapter.description}`.trim(), records }) });
}

main().catch((err: Error) => fetch('/result', { method: 'POST', body: JSON.stringify({ error: `${err.name}: ${err.message}` }) }));
