/** Rolling reduce and aggregate: the running value per key, emitted per record in arrival order. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { createKeyedOperator } from "../../../activities/state/create.js";
import { drive, generateEvents, keyedNode, type TestEvent } from "./harness.js";
import { referenceRolling } from "./reference.js";

const EVENTS = generateEvents(5, 600, { keys: 9 });

test("rolling reduce emits each key's running value, in arrival order, with the record's time", async () => {
  const backend = new InMemoryStateBackend();
  const reduce = (a: TestEvent, b: TestEvent): TestEvent => ({ ...b, n: a.n + b.n, s: `${a.s},${b.s}` });
  const op = createKeyedOperator(keyedNode({ op: "reduce" }), { main: reduce }, backend, () => 0);
  const out = await drive(
    op,
    backend,
    EVENTS,
    EVENTS.map(() => -Infinity),
  );
  const ref = referenceRolling<TestEvent, TestEvent>(EVENTS, (acc, e) => (acc === undefined ? e : reduce(acc, e)));
  assert.deepEqual(
    out,
    ref.map((r) => ({ value: r.value, timestamp: r.timestamp, tag: null })),
  );
  assert.equal(backend.size().entries, 9, "one running value per key");
});

test("rolling aggregate emits getResult of each key's accumulator per record", async () => {
  const backend = new InMemoryStateBackend();
  const agg = {
    createAccumulator: () => ({ count: 0, last: "" }),
    add: (e: TestEvent, acc: { count: number; last: string }) => ({ count: acc.count + 1, last: e.s }),
    getResult: (acc: { count: number; last: string }) => `${acc.count}:${acc.last}`,
  };
  const op = createKeyedOperator(keyedNode({ op: "aggregate" }), { main: agg }, backend, () => 0);
  const out = await drive(
    op,
    backend,
    EVENTS,
    EVENTS.map(() => -Infinity),
  );
  const ref = referenceRolling<TestEvent, { count: number; last: string }>(EVENTS, (acc, e) => agg.add(e, acc ?? agg.createAccumulator()));
  assert.deepEqual(
    out.map((e) => e.value),
    ref.map((r) => agg.getResult(r.value)),
  );
});

test("a reduce returning a promise is refused, naming the state", async () => {
  const backend = new InMemoryStateBackend();
  const op = createKeyedOperator(keyedNode({ op: "reduce" }), { main: { reduce: async (a: number, b: number) => a + b } }, backend, () => 0);
  const twice = [1, 2].map((value) => ({ key: '"k"', value, timestamp: 0 }));
  await drive(op, backend, twice, [-Infinity], { to: 1 });
  await assert.rejects(
    drive(op, backend, twice, [-Infinity, -Infinity], { from: 1 }),
    /state \$r: the key's running value .* cannot hold this value: the value is a Promise \(state functions must return values, not promises\)/,
  );
});
