/**
 * The savepoint format on its own: a manifest is parsed or refused with the reason, an operator's
 * data file round-trips and is checked against the manifest, and a restore is checked against the
 * new plan (pipeline, key groups, dropped and changed operators) before anything is written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Duration, TumblingWindow, definePipeline, KafkaSink, KafkaSource } from "../../../index.js";
import { parseManifest, SAVEPOINT_FORMAT, SAVEPOINT_VERSION, type SavepointManifest } from "../../../client/savepoint/manifest.js";
import { decodeState, encodeState } from "../../../client/savepoint/state-file.js";
import { checkRestore } from "../../../client/savepoint/restore.js";
import { SavepointError } from "../../../client/savepoint/errors.js";
import { entryKey, timerNamespace } from "../../../activities/state/entry-key.js";

/** A pipeline with a tumbling sum (uid `sum`) and, unless `v2`, a rolling count (uid `count`); v2 adds `max`. */
function pipeline(v2 = false) {
  return definePipeline("sp-unit", (env) => {
    const keyed = env.fromSource(KafkaSource.topic<{ k: string; v: number }>("in", { groupId: "g" }), { name: "in" }).keyBy((e) => e.k, { name: "by-k" });
    keyed
      .window(TumblingWindow.of(Duration.ofSeconds(10)))
      .reduce((a, b) => ({ ...a, v: a.v + b.v }), { name: "sum" })
      .sink(KafkaSink.topic("out-sum"), { name: "out-sum" });
    if (v2) keyed.reduce((a, b) => (b.v > a.v ? b : a), { name: "max" }).sink(KafkaSink.topic("out-max"), { name: "out-max" });
    else keyed.reduce((a, b) => ({ ...b, v: a.v + b.v }), { name: "count" }).sink(KafkaSink.topic("out-count"), { name: "out-count" });
  });
}

function manifestOf(plan: { pipeline: string; hash: string; keyGroups?: number }, operators: SavepointManifest["operators"]): SavepointManifest {
  return {
    format: SAVEPOINT_FORMAT,
    version: SAVEPOINT_VERSION,
    id: "sp1",
    createdAt: new Date(0).toISOString(),
    stopped: true,
    job: { pipeline: plan.pipeline, jobId: "j1", planHash: plan.hash, parallelism: 2, keyGroups: plan.keyGroups ?? 128, params: {} },
    sources: { groupId: "g", topics: ["in"], offsets: { "in:0": 10 } },
    eventTime: { "in:0": 1000 },
    operators,
  };
}

const entries = new Map([
  [entryKey(3, "$r", "", '"a"'), '{"k":"a","v":3}'],
  [entryKey(1, "$w", "0", '"b"'), '{"k":"b","v":1}'],
  [entryKey(1, "$te", timerNamespace(9_999, "0"), '"b"'), "1"],
]);

test("an operator's state round-trips, sorted by key group, with its sizes per key group and its timers counted", () => {
  const { data, summary } = encodeState(entries);
  assert.equal(summary.entries, 3);
  assert.equal(summary.timers, 1);
  assert.deepEqual(
    summary.keyGroups.map(([kg, n]) => [kg, n]),
    [
      [1, 2],
      [3, 1],
    ],
  );
  const op = { name: "x", kind: "reduce", sourcePartitioned: false, file: "state/x.jsonl.gz", ...summary };
  const back = decodeState(data, op, "x.jsonl.gz");
  assert.deepEqual(new Map(back), entries);
  assert.ok(back[0]![0] < back[1]![0] && back[1]![0] < back[2]![0], "sorted by entry key");
});

test("a data file that is truncated, corrupt or holds other entries is refused, naming it", () => {
  const { data, summary } = encodeState(entries);
  const op = { name: "x", kind: "reduce", sourcePartitioned: false, file: "f", ...summary };
  assert.throws(() => decodeState(data.subarray(0, 10), op, "f.gz"), /f\.gz has 10 bytes but the manifest says \d+: the file is truncated/);
  const flipped = Buffer.from(data);
  flipped[5] = flipped[5]! ^ 1;
  assert.throws(() => decodeState(flipped, op, "f.gz"), /f\.gz is corrupt: its SHA-256 is/);
  assert.throws(() => decodeState(data, { ...op, entries: 4 }, "f.gz"), /holds 3 entries but the manifest says 4/);
});

test("a manifest that is not JSON, not a savepoint, of a newer version or missing a field is refused with the reason", () => {
  const plan = pipeline().compile({ parallelism: 2, fusion: true }).plan;
  const good = manifestOf(plan, {});
  assert.deepEqual(parseManifest(JSON.stringify(good), "m.json"), good);
  assert.throws(
    () => parseManifest('{"format":', "m.json"),
    (e: unknown) => e instanceof SavepointError && /m\.json is not a savepoint manifest: it is not valid JSON/.test(e.message),
  );
  assert.throws(() => parseManifest('{"format":"zip"}', "m.json"), /its "format" is "zip", not "sage-savepoint"/);
  assert.throws(() => parseManifest(JSON.stringify({ ...good, version: 9 }), "m.json"), /format version 9, newer than this Sage reads \(up to 1\)/);
  const { sources: _gone, ...noSources } = good;
  assert.throws(() => parseManifest(JSON.stringify(noSources), "m.json"), /m\.json is not a valid savepoint manifest: sources:/);
});

test("a restore is checked against the new plan: another pipeline, other key groups, a dropped or changed operator", () => {
  const v1 = pipeline().compile({ parallelism: 2, fusion: true }).plan;
  const v2 = pipeline(true).compile({ parallelism: 3, fusion: true }).plan;
  const { summary } = encodeState(entries);
  const op = (kind: string) => ({ name: kind, kind, sourcePartitioned: false, file: "f", ...summary });
  const saved = manifestOf(v1, { sum: op("window/tumbling/reduce"), count: op("reduce") });
  assert.deepEqual(checkRestore(saved, v1, "j2", false), { restored: ["sum", "count"], added: [], dropped: [] });
  assert.throws(() => checkRestore(saved, v2, "j2", false), /holds state of operator\(s\) "count" \(reduce, 3 entries\) that the pipeline no longer has/);
  assert.deepEqual(checkRestore(saved, v2, "j2", true), { restored: ["sum"], added: ["max"], dropped: ["count"] });
  assert.throws(() => checkRestore({ ...saved, job: { ...saved.job, pipeline: "other" } }, v1, "j2", false), /is of pipeline "other", not "sp-unit"/);
  assert.throws(() => checkRestore({ ...saved, job: { ...saved.job, keyGroups: 64 } }, v1, "j2", false), /has 64 key groups but the pipeline 128/);
  assert.throws(
    () => checkRestore({ ...saved, operators: { ...saved.operators, sum: op("window/sliding/reduce") } }, v1, "j2", false),
    /operator "sum" kept window\/sliding\/reduce state, but in the pipeline it is now window\/tumbling\/reduce/,
  );
});
