/**
 * Determinism guard: replays every committed history under test/replay/histories/ against today's
 * workflow code with the SDK's replayer. A failure here means a change to workflows/ (or to core/
 * code the workflow runs) alters the command sequence of runs that already exist: in production,
 * those runs would fail with a non-determinism error when a worker picks them up again.
 *
 * A workflow change that must keep existing runs replaying goes behind `patched()` (see
 * `test/fixtures/replay-patched-workflow.ts` and its test below): the committed histories then
 * replay unchanged, and stay. Re-record them (`npx tsx scripts/record-histories.ts`, committed with
 * the change) only when no run of the old code can still be running: drained, or never released.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { historyFromJSON } from "@temporalio/common/lib/proto-utils.js";
import { installReplayRuntime, replayFile } from "../../replay/replay.js";
import { PIPELINE_WORKFLOW } from "../../core/plan/job.js";
import { HOLD_SIGNAL, STREAM_WORKFLOW } from "../../core/plan/stream.js";
import { REPO } from "../support/harness.js";

const DIR = join(REPO, "test", "replay", "histories");
// This file's process only replays: keep the SDK's worker chatter at WARN, on stderr.
installReplayRuntime();
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

/** The events of a committed history. */
function eventsOf(file: string) {
  return historyFromJSON(JSON.parse(readFileSync(join(DIR, file), "utf8"))).events ?? [];
}

test("the recorded histories cover a plain job, dead letters, an unfused plan, a failed job, a routed job and two runs of a streaming job", () => {
  assert.deepEqual(files, ["dead-letter.json", "failed.json", "routed.json", "stream-held.json", "stream-resumed.json", "unfused.json", "wordcount.json"]);
  for (const f of files) {
    const started = eventsOf(f)[0]?.workflowExecutionStartedEventAttributes;
    assert.equal(started?.workflowType?.name, f.startsWith("stream-") ? STREAM_WORKFLOW : PIPELINE_WORKFLOW, f);
  }
});

test("stream-held.json is a partition workflow's run that took batches, was held by the shim and continued as new", () => {
  const events = eventsOf("stream-held.json");
  const signals = events.flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
  assert.ok(signals.filter((s) => s === "sage:batch").length >= 2, `signals: ${signals.join(", ")}`);
  assert.ok(signals.includes(HOLD_SIGNAL), `no hold signal: ${signals.join(", ")}`);
  assert.ok(events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes, "the run did not continue as new");
});

test("stream-resumed.json is a run that started from a checkpoint, took batches and was stopped", () => {
  const events = eventsOf("stream-resumed.json");
  assert.ok(events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId, "the run did not start from a checkpoint");
  const signals = events.flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
  assert.ok(signals.includes("sage:batch") && signals.includes("sage:stop"), `signals: ${signals.join(", ")}`);
  assert.ok(events.at(-1)?.workflowExecutionCompletedEventAttributes, "the run did not complete");
});

for (const f of files) {
  test(`${f} replays deterministically against today's workflow code`, async () => {
    const v = await replayFile(join(DIR, f));
    assert.equal(v.error, undefined);
    assert.equal(v.deterministic, true);
  });
}

test("the replayer catches a workflow that schedules an extra activity", async () => {
  const v = await replayFile(join(DIR, "wordcount.json"), join(REPO, "test", "fixtures", "replay-changed-workflow.ts"));
  assert.equal(v.deterministic, false);
  assert.match(v.error ?? "", /DeterminismViolationError/);
});

test("the same change behind patched() keeps the recorded history replaying", async () => {
  const v = await replayFile(join(DIR, "wordcount.json"), join(REPO, "test", "fixtures", "replay-patched-workflow.ts"));
  assert.equal(v.error, undefined);
  assert.equal(v.deterministic, true);
});

test("routed.json is an unfused routed job: its batches crossed the router's branches and the union in history", () => {
  const types = eventsOf("routed.json").flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
  for (const stage of ["stage:by-length", "stage:short", "stage:no-zero", "stage:long", "stage:medium", "stage:by-length-union", "stage:out"]) {
    assert.ok(types.includes(stage), `no ${stage} activity in routed.json: ${[...new Set(types)].join(", ")}`);
  }
});
