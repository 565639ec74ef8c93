import { test } from 'uvu';
import { add, matmul } from '../../engine/index.ts';
import { gradCheck } from '../helpers.ts';

test('add broadcast forward and backward', async () => {
  await gradCheck({
    name: 'add', shapes: [[3, 5], [5]],
    gpu: (a, b) => add(a, b),
    cpu: (a, b) => a.map((v, i) => v + b[i % 5]),
  });
});

test('matmul 17x65 @ 65x3', async () => {
  await gradCheck({
    name: 'matmul', shapes: [[17, 65], [65, 3]],
    gpu: (a, b) => matmul(a, b),
    cpu: (a, b) => {
      const out = new Float64Array(17 * 3);
      for (let i = 0; i < 17; i++) for (let j = 0; j < 3; j++) { let s = 0; for (let k = 0; k < 65; k++) s += a[i * 65 + k] * b[k * 3 + j]; out[i * 3 + j] = s; }
      return out;
    },
  });
});

test.run();
