// The fill kernel (shaders/fill.wgsl, behind Tensor.full, Tensor.zeros and the poison): every
// element of every size gets the pattern, whole vec4s and a partial last one alike, across
// several workgroups, for f32, i32 and u32 patterns.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../../engine/index.ts';

test('Tensor.full writes every element, sizes 1 to 4099', async () => {
  for (const n of [1, 3, 4, 5, 17, 1024, 4099]) {
    for (const [value, dtype] of [[-2.5, 'f32'], [7, 'i32'], [0xfffffffe, 'u32']] as const) {
      // Recycled storage holding other numbers first: the fill must overwrite all of it.
      const junk = Tensor.fromArray(Float32Array.from({ length: n }, (_, i) => i + 0.5), [n]);
      junk.dispose();
      const t = Tensor.full([n], value, { dtype });
      const got = await t.toArray();
      assert.is(got.length, n);
      const wrong = Array.from(got).findIndex((v) => v !== value);
      assert.is(wrong, -1, `${dtype} ${n}: element ${wrong} is ${got[wrong]}, expected ${value}`);
      t.dispose();
    }
  }
});

test.run();
