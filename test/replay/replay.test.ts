/**
 * Determinism guard: replays every committed history under test/replay/histories/ against today's
 * workflow code with the SDK's replayer. A failure here means a change to workflows/ (or to core/
 * code the workflow runs) alters the command sequence of runs that already exist: in production,
 * those runs would fail with a non-determinism error when a worker picks them up again.
 *
 * If the change is intentional (and old runs are drained or versioned with `patched()`), re-record
 * the histories with `npx tsx scripts/record-histories.ts` and commit them with the change.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { historyFromJSON } from "@temporalio/common/lib/proto-utils.js";
import { installReplayRuntime, replayFile } from "../../replay/replay.js";
import { PIPELINE_WORKFLOW } from "../../core/plan/job.js";
import { REPO } from "../support/harness.js";

const DIR = join(REPO, "test", "replay", "histories");
// This file's process only replays: keep the SDK's worker chatter at WARN, on stderr.
installReplayRuntime();
const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

test("the recorded histories cover a plain job, dead letters, an unfused plan, a failed job and a routed job", () => {
  assert.deepEqual(files, ["dead-letter.json", "failed.json", "routed.json", "unfused.json", "wordcount.json"]);
  for (const f of files) {
    const history = historyFromJSON(JSON.parse(readFileSync(join(DIR, f), "utf8")));
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    assert.equal(started?.workflowType?.name, PIPELINE_WORKFLOW, f);
  }
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

test("routed.json is an unfused routed job: its batches crossed the router's branches and the union in history", () => {
  const history = historyFromJSON(JSON.parse(readFileSync(join(DIR, "routed.json"), "utf8")));
  const types = (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
  for (const stage of ["stage:by-length", "stage:short", "stage:no-zero", "stage:long", "stage:medium", "stage:by-length-union", "stage:out"]) {
    assert.ok(types.includes(stage), `no ${stage} activity in routed.json: ${[...new Set(types)].join(", ")}`);
  }
});
