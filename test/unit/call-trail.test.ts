/**
 * Unit tests of the model calls a unit's lineage notes: each call lands in the trail of the unit it
 * was made for (two units running at once keep theirs apart, across awaits), at the record in
 * flight, or for the batch inside a `mapBatch` call; and an answer lists the calls of its record,
 * of a batch that held it, and of its whole unit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { noteCall, withCallTrail } from "../../connectors/llm/call-trail.js";
import { UnitLineage } from "../../activities/stage/unit-lineage.js";
import { callsOf, type LlmCallLineage } from "../../core/plan/lineage.js";

const call = (request: string, key = request) => ({ operator: "generate", model: "m", request, key });

test("calls land in their own unit's trail, at the record in flight, across awaits", async () => {
  const a = new UnitLineage();
  const b = new UnitLineage();
  const run = (lineage: UnitLineage, name: string) =>
    withCallTrail(lineage, async () => {
      for (let i = 0; i < 3; i++) {
        lineage.start = 100 * i;
        await sleep(1);
        noteCall(call(`${name}${i}`));
      }
    });
  await Promise.all([run(a, "a"), run(b, "b")]);
  noteCall(call("outside"));
  assert.deepEqual(
    a.calls.map((c) => [c.at, c.request]),
    [
      ["0", "a0"],
      ["100", "a1"],
      ["200", "a2"],
    ],
  );
  assert.deepEqual(
    b.calls.map((c) => c.request),
    ["b0", "b1", "b2"],
  );
});

test("a mapBatch call is noted for its batch; its results' own calls for their records again", async () => {
  const lineage = new UnitLineage();
  await withCallTrail(lineage, async () => {
    lineage.start = 40;
    await lineage.batchWide(async () => {
      lineage.enterBatch(["10", "20"]);
      noteCall(call("embed", "embed-cheaper"));
      lineage.resume(20, 5);
      noteCall(call("chat-20"));
    });
    // Back at the record in flight before the batch ran.
    assert.equal(lineage.start, 40);
    assert.equal(lineage.batching, false);
  });
  assert.deepEqual(lineage.calls, [
    { at: null, operator: "generate", model: "m", request: "embed", key: "embed-cheaper", batch: ["10", "20"] },
    { at: "20", operator: "generate", model: "m", request: "chat-20" },
  ]);
  // A streaming unit: the batch stands for the whole unit.
  const stream = new UnitLineage(() => "in[0]@7");
  await withCallTrail(stream, () => stream.batchWide(async () => noteCall(call("embed"))));
  assert.deepEqual(stream.calls[0]!.at, null);
  assert.equal(stream.calls[0]!.batch, undefined);
});

test("an answer lists its record's calls, those of a batch that held it, and those of its whole unit", () => {
  const calls: LlmCallLineage[] = [
    { at: "20", operator: "g", model: "m", request: "own" },
    { at: "30", operator: "g", model: "m", request: "other" },
    { at: null, operator: "e", model: "m", request: "batch", batch: ["10", "20"] },
    { at: null, operator: "e", model: "m", request: "other-batch", batch: ["30"] },
    { at: null, operator: "e", model: "m", request: "unit" },
  ];
  assert.deepEqual(
    callsOf(calls, "20").map((c) => c.request),
    ["own", "batch", "unit"],
  );
  assert.deepEqual(
    callsOf(calls, null).map((c) => c.request),
    ["unit"],
  );
  assert.deepEqual(callsOf(undefined, "20"), []);
});
