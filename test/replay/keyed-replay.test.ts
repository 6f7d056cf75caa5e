/**
 * Determinism guard for stateful streaming jobs: replays the committed run of a keyed job's
 * partition workflow (test/replay/keyed-histories/, recorded by `npx tsx
 * scripts/record-histories.ts stream-keyed` from `test/fixtures/replay-keyed-pipeline.ts`) against
 * today's workflow code. The run took source batches and repartition batches of two keyed stages
 * (a tumbling window and a keyed process), slept on durable workflow timers for processing-time
 * timers, started from a checkpoint and continued as new. The checks below fail if a re-recording
 * lost any of that, so the replay keeps covering the keyed paths of the workflow.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { historyFromJSON } from "@temporalio/common/lib/proto-utils.js";
import { installReplayRuntime, replayFile } from "../../replay/replay.js";
import { STREAM_WORKFLOW, repartitionTopicOf } from "../../core/plan/stream.js";
import { REPO } from "../support/harness.js";
import { missingKeyedPieces, readKeyedRun } from "./keyed-history.js";

const FILE = join(REPO, "test", "replay", "keyed-histories", "stream-keyed.json");
installReplayRuntime();
const history = historyFromJSON(JSON.parse(readFileSync(FILE, "utf8")));
const run = readKeyedRun(history);

test("stream-keyed.json is a run of a keyed job's partition workflow that holds every keyed piece", () => {
  assert.equal(history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name, STREAM_WORKFLOW);
  assert.deepEqual(missingKeyedPieces(run), []);
  assert.deepEqual(run.keyedTypes, ["stage:window+out-window", "stage:remind+out-remind"]);
});

test("its batches came from the source topic and from the repartition topic of each keyed stage", () => {
  const { pipeline } = run.input.plan;
  const topics = new Set(run.batchTopics);
  for (const uid of ["window", "remind"])
    assert.ok(topics.has(repartitionTopicOf(pipeline, run.input.jobId, uid)), `no batch of ${uid}: ${[...topics].join(", ")}`);
  assert.ok(!run.batchStages.includes("?"), `a batch no stage reads: ${[...topics].join(", ")}`);
});

test("its keyed stages returned event time, and it started from a checkpoint that carried event time and a timer", () => {
  for (const t of run.keyedTypes) {
    const withTime = run.stageRuns.filter((r) => r.type === t && Object.keys(r.output.eventTime ?? {}).length > 0);
    assert.ok(withTime.length > 0, `no run of ${t} returned its event time`);
  }
  const state = run.input.state;
  assert.ok(state && Object.keys(state.eventTime ?? {}).length > 0, "the checkpoint carried no event time");
  assert.ok(Object.keys(state?.timers ?? {}).length > 0, "the checkpoint carried no processing-time timer");
});

test("a durable workflow timer fired the keyed process's processing-time timers: a unit that took no records and emitted", () => {
  assert.ok(run.timersStarted > 0, "no TimerStarted event");
  const units = run.timerUnits.filter((u) => u.type === "stage:remind+out-remind");
  assert.ok(units.length > 0, `no timer unit of the keyed process: ${run.timerUnits.map((u) => u.type).join(", ")}`);
  for (const u of units) {
    assert.equal(u.output.counts["remind"]?.in, 0, `a timer unit took records: ${JSON.stringify(u.output.counts)}`);
    assert.ok((u.output.counts["out-remind"]?.in ?? 0) > 0, `a timer unit emitted nothing: ${JSON.stringify(u.output.counts)}`);
  }
});

test("stream-keyed.json replays deterministically against today's workflow code", async () => {
  const v = await replayFile(FILE);
  assert.equal(v.error, undefined);
  assert.equal(v.deterministic, true);
});

test("the replayer catches a partition workflow that restores keyed state with an extra activity", async () => {
  const v = await replayFile(FILE, join(REPO, "test", "fixtures", "replay-changed-stream-workflow.ts"));
  assert.equal(v.deterministic, false);
  assert.match(v.error ?? "", /DeterminismViolationError/);
});

test("the same change behind patched() keeps the keyed history replaying", async () => {
  const v = await replayFile(FILE, join(REPO, "test", "fixtures", "replay-patched-stream-workflow.ts"));
  assert.equal(v.error, undefined);
  assert.equal(v.deterministic, true);
});
