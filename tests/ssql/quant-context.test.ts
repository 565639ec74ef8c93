// QuantContext.withQuantization (ssql/models/quant.ts): the scoped way to set the quantizers'
// mode and bit-widths. It applies the setting inside, restores the previous one afterwards
// (also when the function throws or its promise rejects), nests, refuses bad bit-widths, and
// the layers follow it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, Tensor, keep, scope } from '../../engine/index.ts';
import { QLinear, QuantContext } from '../../ssql/models/quant.ts';
import { noLeaks, randomArray } from '../helpers.ts';

const state = (ctx: QuantContext) => [ctx.mode, ctx.wbit, ctx.abit];

test('applies the setting inside, restores it after, and nests', () => {
  const ctx = new QuantContext();
  assert.equal(state(ctx), ['off', 0, 0]);
  const seen: unknown[] = [];
  const result = ctx.withQuantization({ mode: 'quantize', wbit: 4, abit: 6 }, () => {
    seen.push(state(ctx));
    ctx.withQuantization({ mode: 'calibrate' }, () => {
      seen.push(state(ctx));
      ctx.withQuantization({ mode: 'quantize', wbit: 2, abit: 8 }, () => seen.push(state(ctx)));
      seen.push(state(ctx));
    });
    seen.push(state(ctx));
    return 'value';
  });
  assert.is(result, 'value');
  assert.equal(seen, [['quantize', 4, 6], ['calibrate', 0, 0], ['quantize', 2, 8], ['calibrate', 0, 0], ['quantize', 4, 6]]);
  assert.equal(state(ctx), ['off', 0, 0]);
});

test('restores the previous setting when the function throws, at every depth', () => {
  const ctx = new QuantContext();
  assert.throws(() => ctx.withQuantization({ mode: 'quantize', wbit: 3, abit: 5 }, () => {
    assert.throws(() => ctx.withQuantization({ mode: 'calibrate' }, () => {
      throw new Error('inner');
    }), /inner/);
    assert.equal(state(ctx), ['quantize', 3, 5], 'the outer setting is back after the inner throw');
    throw new Error('outer');
  }), /outer/);
  assert.equal(state(ctx), ['off', 0, 0]);
});

test('async: the setting holds until the promise settles, and is restored on rejection', async () => {
  const ctx = new QuantContext();
  const inside = await ctx.withQuantization({ mode: 'quantize', wbit: 8, abit: 4 }, async () => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    return state(ctx);
  });
  assert.equal(inside, ['quantize', 8, 4]);
  assert.equal(state(ctx), ['off', 0, 0]);
  await ctx.withQuantization({ mode: 'calibrate' }, async () => {
    await ctx.withQuantization({ mode: 'quantize', wbit: 2, abit: 2 }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      throw new Error('late failure');
    }).then(
      () => assert.unreachable('the rejection was swallowed'),
      (e: Error) => assert.is(e.message, 'late failure'),
    );
    assert.equal(state(ctx), ['calibrate', 0, 0]);
  });
  assert.equal(state(ctx), ['off', 0, 0]);
});

test('bad bit-widths are refused before anything changes', () => {
  const ctx = new QuantContext();
  let ran = false;
  for (const [wbit, abit, what] of [[2.5, 4, 'wbit'], [4, -1, 'abit'], [17, 8, 'wbit']] as const) {
    assert.throws(() => ctx.withQuantization({ mode: 'quantize', wbit, abit }, () => { ran = true; }), new RegExp(`${what} must be an integer in 0..16`));
  }
  assert.not.ok(ran);
  assert.equal(state(ctx), ['off', 0, 0]);
});

test('the layers follow the scope: quantized weights inside, full precision outside', () => noLeaks(async () => {
  const ctx = new QuantContext();
  const layer = new QLinear(ctx, 'w', 16, 8, { random: new Rng(3).next });
  const x = Tensor.fromArray(randomArray([4, 16], 1), [4, 16]);
  // Each forward in its own scope (the quantized weight it caches goes with it), read back.
  const read = async (forward: () => Tensor) => {
    const y = scope(() => keep(forward()));
    try {
      return await y.toArray();
    } finally {
      y.dispose();
    }
  };
  const fpBefore = await read(() => layer.forward(x));
  ctx.newStep();
  const q2 = await read(() => ctx.withQuantization({ mode: 'quantize', wbit: 2, abit: 8 }, () => layer.forward(x)));
  const fpAfter = await read(() => layer.forward(x));
  assert.equal([...fpAfter], [...fpBefore], 'full precision again after the scope');
  const diff = Math.max(...q2.map((v, i) => Math.abs(v - fpBefore[i])));
  assert.ok(diff > 1e-3, `2-bit weights should change the output (max difference ${diff})`);
  for (const t of [x, ...layer.parameters()]) t.dispose();
  ctx.dispose();
}));

test.run();
