/**
 * The pure parts of `sage whatif`: the per-record diff (matched by origin, then content, then key;
 * field-level changes), the stage hash that keys the memo, the range flags, and the units a
 * recorded range is cut into (at the job's batch starts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline, KafkaSink, KafkaSource } from "../../index.js";
import { diffOutputs, fieldChanges, type WhatifOutput } from "../../core/whatif/output-diff.js";
import { stageHashOf, stageUnitKey } from "../../core/whatif/stage-key.js";
import { jobBatchesOf, parseRangeBound, unitsOf, type PartitionRange } from "../../replay/whatif/recorded-range.js";
import { checkWhatifPlan } from "../../replay/whatif/whatif-run.js";
import { WhatifUnsupportedError } from "../../replay/whatif/errors.js";

const out = (from: string, key: string | null, value: unknown, topic = "out"): WhatifOutput => ({ topic, key, value, from });

test("the diff pairs outputs by origin, then content, then key; what is left is added or removed", () => {
  const base = [
    out("in[0]@1", "1", { a: 1 }),
    out("in[0]@2", "2", { a: 2, b: [1, 2] }),
    out("in[0]@3", "3", { a: 3 }),
    out("unit 0", "7", { n: 7 }),
    out("unit 0", "8", { n: 8 }),
  ];
  const changed = [
    out("in[0]@1", "1", { a: 1 }),
    out("in[0]@2", "2", { a: 2, b: [1, 5], c: true }),
    out("in[0]@4", "4", { a: 4 }),
    out("unit 0", "8", { n: 80 }),
    out("unit 0", "7", { n: 7 }),
  ];
  const diff = diffOutputs(base, changed);
  assert.equal(diff.same, 2);
  assert.deepEqual(
    diff.entries.map((e) => [e.kind, e.from, e.key]),
    [
      ["changed", "in[0]@2", "2"],
      ["removed", "in[0]@3", "3"],
      ["changed", "unit 0", "8"],
      ["added", "in[0]@4", "4"],
    ],
  );
  const changedEntry = diff.entries[0]!;
  assert.ok(changedEntry.kind === "changed");
  assert.deepEqual(changedEntry.fields, [
    { path: "$.b[1]", base: 2, changed: 5 },
    { path: "$.c", changed: true },
  ]);
});

test("outputs with no key and one origin pair in order when as many; different keys in one origin are an add and a remove", () => {
  const diff = diffOutputs([out("unit 1", null, "x"), out("unit 2", "a", 1)], [out("unit 1", null, "y"), out("unit 2", "b", 1)]);
  assert.deepEqual(
    diff.entries.map((e) => e.kind),
    ["changed", "removed", "added"],
  );
  // Without keys and with as many on both sides they pair in order; with more or fewer, which became which is unknown.
  const uneven = diffOutputs(
    [out("split 0", null, { id: 4 }), out("split 0", null, { id: 1 })],
    [out("split 0", null, { id: 1 }), out("split 0", null, { id: 3 }), out("split 0", null, { id: 6 })],
  );
  assert.equal(uneven.same, 1);
  assert.deepEqual(
    uneven.entries.map((e) => [e.kind, e.kind === "changed" ? e.changed : e.value]),
    [
      ["removed", { id: 4 }],
      ["added", { id: 3 }],
      ["added", { id: 6 }],
    ],
  );
  assert.deepEqual(fieldChanges("x", "y"), [{ path: "$", base: "x", changed: "y" }]);
  assert.deepEqual(fieldChanges({ a: [1] }, { a: [1, 2] }), [{ path: "$.a", base: [1], changed: [1, 2] }]);
});

test("a stage's hash changes with its own operators only; the unit key with its input and parameters", () => {
  const build = (factor: number, suffix: string) =>
    definePipeline("hashes", (env) =>
      env
        .fromSource(KafkaSource.topic<{ n: number }>("in", { groupId: "g" }), { name: "in" })
        .map((r) => ({ n: r.n + 1 }), { name: "first" })
        .map(factor === 2 ? (r: { n: number }) => ({ n: r.n * 2 }) : (r: { n: number }) => ({ n: r.n * 3 }), { name: "second", parallelism: 2 })
        .map((r) => ({ s: `${r.n}${suffix}` }), { name: "third", parallelism: 2 })
        .sink(KafkaSink.topic("out"), { name: "out", parallelism: 2 }),
    ).compile({ parallelism: 1, fusion: true }).plan;
  const a = build(2, "");
  const b = build(3, "");
  assert.equal(a.stages.length, 2);
  assert.equal(stageHashOf(a, a.stages[0]!), stageHashOf(b, b.stages[0]!), "the first stage is unchanged");
  assert.notEqual(stageHashOf(a, a.stages[1]!), stageHashOf(b, b.stages[1]!), "the second stage's function changed");
  const h = stageHashOf(a, a.stages[0]!);
  assert.notEqual(stageUnitKey(h, "in1", {}), stageUnitKey(h, "in2", {}));
  assert.notEqual(stageUnitKey(h, "in1", {}), stageUnitKey(h, "in1", { p: "1" }));
  assert.equal(stageUnitKey(h, "in1", { p: "1", q: "2" }), stageUnitKey(h, "in1", { q: "2", p: "1" }));
});

test("--from/--to read offsets per partition or an ISO time; anything else is a usage error", () => {
  assert.deepEqual(parseRangeBound("0:10,t.x:1:5", "--from"), {
    kind: "offsets",
    offsets: [
      { topic: null, partition: 0, offset: 10 },
      { topic: "t.x", partition: 1, offset: 5 },
    ],
  });
  assert.deepEqual(parseRangeBound("2026-12-03T08:00:00Z", "--to"), { kind: "time", at: Date.parse("2026-12-03T08:00:00Z"), text: "2026-12-03T08:00:00Z" });
  assert.throws(() => parseRangeBound("yesterday", "--from"), /--from yesterday: give offsets/);
  assert.throws(() => parseRangeBound("2026-13-45", "--from"), /not a time/);
});

test("a range is cut into units as the job cut its units, elsewhere at the most records per unit", () => {
  const records = Array.from({ length: 12 }, (_, i) => ({ offset: String(100 + i), key: null, value: Buffer.from(`v${i}`), headers: {}, timestamp: "0" }));
  const range: PartitionRange = { topic: "in", partition: 0, from: 100, to: 112, records };
  const line = (slices: string[]) => ({ batch: "b", stage: "s0", workflowId: "w", runId: "r", attempt: 1, slices, at: "" });
  // A unit that merged two batches (100-105 in one go), one of a single record, and a line of another partition.
  const batches = jobBatchesOf([line(["in[0]@100-102", "in[0]@103-105"]), line(["in[0]@106-106"]), line(["in[1]@0-50"]), line(["in[0]@103-104"])]);
  assert.deepEqual(batches.get("in:0"), [
    [100, 105],
    [106, 106],
  ]);
  const units = unitsOf([range], 4, batches);
  assert.deepEqual(
    units.map((u) => [u.slices[0]!.from, u.slices[0]!.to, u.count]),
    [
      [100, 105, 6],
      [106, 106, 1],
      [107, 110, 4],
      [111, 111, 1],
    ],
  );
  assert.equal(new Set(units.map((u) => u.inputHash)).size, 4);
  assert.equal(unitsOf([range], 4, batches)[2]!.inputHash, units[2]!.inputHash, "the same records hash the same");
});

test("a what-if refuses a pipeline whose sink it cannot capture, or with keyed state", () => {
  const plan = (sink: "print" | "function" | "keyed") =>
    definePipeline("refused", (env) => {
      const s = env.fromSource(KafkaSource.topic<{ k: string; n: number }>("in", { groupId: "g" }), { name: "in" });
      if (sink === "print") s.print({ name: "shown" });
      else if (sink === "function") s.sink((v: unknown) => void v, { name: "mine" });
      else
        s.keyBy((r) => r.k, { name: "by-k" })
          .reduce((a, b) => ({ k: a.k, n: a.n + b.n }), { name: "sum" })
          .sink(KafkaSink.topic("out"), { name: "out" });
    }).compile({ parallelism: 1, fusion: true }).plan;
  assert.throws(
    () => checkWhatifPlan(plan("print")),
    (e: unknown) => e instanceof WhatifUnsupportedError && /sink "shown" \(print\)/.test(e.message),
  );
  assert.throws(() => checkWhatifPlan(plan("function")), /sink "mine" \(function\)/);
  assert.throws(() => checkWhatifPlan(plan("keyed")), /keyed \(stateful\) operators \(sum\)/);
});
