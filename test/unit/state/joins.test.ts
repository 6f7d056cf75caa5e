/** Window join and interval join against the plain reference. */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { IntervalJoinContext } from "../../../core/api/state.js";
import type { WindowSpec } from "../../../core/api/windows.js";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { createKeyedOperator } from "../../../activities/state/create.js";
import { drive, generateEvents, keyedNode, random, type TestEvent } from "./harness.js";
import { referenceIntervalJoin, referenceWindowJoin, watermarksBefore, type RefRecord } from "./reference.js";

/** Two inputs interleaved at random: side 0 (left) and 1 (right). */
function twoSides(seed: number, count: number): Array<RefRecord<TestEvent>> {
  const rnd = random(seed * 7);
  return generateEvents(seed, count, { keys: 4, step: 10, jitter: 40, lateShare: 0.05, lag: 300 }).map((r) => ({ ...r, side: rnd() < 0.5 ? 0 : 1 }));
}

const RECORDS = twoSides(21, 1200);
const WATERMARKS = watermarksBefore(RECORDS, 50);

for (const spec of [
  { kind: "tumbling", sizeMs: 100, offsetMs: 0, time: "event" },
  { kind: "sliding", sizeMs: 100, slideMs: 50, offsetMs: 0, time: "event" },
] satisfies WindowSpec[]) {
  test(`${spec.kind} window join: every pair of equal keys in a window, left order then right`, async () => {
    const backend = new InMemoryStateBackend();
    const fn = (l: TestEvent, r: TestEvent) => `${l.k}:${l.n}-${r.n}`;
    const op = createKeyedOperator(keyedNode({ op: "windowJoin", window: spec }), { main: fn }, backend, () => 0);
    const out = await drive(op, backend, RECORDS, WATERMARKS);
    const ref = referenceWindowJoin<TestEvent, TestEvent, string>(RECORDS, WATERMARKS, spec, fn);
    assert.ok(ref.length > 500, `pairs: ${ref.length}`);
    assert.deepEqual(
      out,
      ref.map((p) => ({ ...p, tag: null })),
    );
    assert.ok(op.lateDropped > 0, "late records are dropped and counted");
    assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 });
  });
}

for (const [lower, upper] of [
  [-30, 20],
  [10, 60],
  [-50, -5],
]) {
  test(`interval join between(${lower}, ${upper}): every pair of non-late records, when the later arrives`, async () => {
    const backend = new InMemoryStateBackend();
    const fn = (l: TestEvent, r: TestEvent, ctx: IntervalJoinContext<unknown>) => {
      assert.equal(ctx.leftTimestamp, l.ts);
      assert.equal(ctx.rightTimestamp, r.ts);
      ctx.emit({ l: l.n, r: r.n });
    };
    const op = createKeyedOperator(keyedNode({ op: "intervalJoin", lowerMs: lower!, upperMs: upper! }), { main: fn }, backend, () => 0);
    const out = await drive(op, backend, RECORDS, WATERMARKS, { end: false });
    const ref = referenceIntervalJoin<TestEvent, TestEvent>(RECORDS, WATERMARKS, lower!, upper!);
    assert.ok(ref.pairs.length > 200, `pairs: ${ref.pairs.length}`);
    assert.deepEqual(
      out,
      ref.pairs.map((p) => ({ value: { l: p.left.n, r: p.right.n }, timestamp: p.timestamp, tag: null })),
    );
    assert.equal(op.lateDropped, ref.late);
    assert.ok(ref.late > 10);
    const held = backend.size().entries;
    assert.ok(held <= 8, `buffers are cleaned as the watermark passes (${held} entries held)`);
    await drive(op, backend, [], []);
    assert.deepEqual(backend.size(), { entries: 0, bytes: 0, timers: 0 }, "nothing left once the watermark is +Infinity");
  });
}
