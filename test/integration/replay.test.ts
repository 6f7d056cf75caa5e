/**
 * `sage replay` against the real dev server: a finished run replays deterministically, the same run
 * replayed against a deliberately changed workflow is reported as a determinism violation (exit 1),
 * a committed history file replays, and `--failed --pipeline` finds and replays a failed run.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { JobFailedError, SageClient } from "../../client/sage-client.js";
import type { SageConfig } from "../../core/config/schema.js";
import type { ReplayVerdict } from "../../replay/replay.js";
import { workflowIdOf } from "../../core/plan/job.js";
import { SEARCH_ATTRIBUTES } from "../../client/search-attributes.js";
import wordcount from "../../examples/wordcount/pipeline.js";
import fails from "../fixtures/replay-fails.js";
import { REPO, cliEnv, runJob, sageCli, testConfig } from "../support/harness.js";

const CHANGED_WORKFLOW = join("test", "fixtures", "replay-changed-workflow.ts");

function lines(n: number, poisonAt = -1): string {
  return Array.from({ length: n }, (_, i) => `line ${i} of the replay test input${i === poisonAt ? " boom" : ""}\n`).join("");
}

/** The verdicts of `sage replay --json`: its whole stdout is one JSON document (SDK logs go to stderr). */
function verdicts(stdout: string): ReplayVerdict[] {
  return JSON.parse(stdout) as ReplayVerdict[];
}

/** Waits until visibility lists `workflowId` among the failed runs of `pipeline` (it is updated asynchronously). */
async function waitListedAsFailed(config: SageConfig, pipeline: string, workflowId: string): Promise<void> {
  const client = await SageClient.connect({ config });
  try {
    const query = `${SEARCH_ATTRIBUTES.pipeline.name} = "${pipeline}" AND ExecutionStatus = "Failed" AND WorkflowId = "${workflowId}"`;
    for (let i = 0; i < 300; i++) {
      const { count } = await client.temporal.workflow.count(query);
      if (count > 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`visibility never listed ${workflowId} as failed`);
  } finally {
    await client.close();
  }
}

test("sage replay <workflowId> reports a real run deterministic, and a changed workflow as a violation", async () => {
  const config = testConfig("replay-run", { "execution.split-bytes": "1kb" });
  const input = join(config.dir, "input.txt");
  writeFileSync(input, lines(60));
  const { job, result } = await runJob(wordcount, config, { input, output: join(config.dir, "out.jsonl") });
  assert.equal(result.phase, "done");
  assert.ok(result.splitsTotal > 1, `expected several splits, got ${result.splitsTotal}`);

  const ok = sageCli(["replay", job.workflowId, "--json"], { env: cliEnv(config) });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(verdicts(ok.stdout), [{ workflowId: job.workflowId, runId: job.runId, deterministic: true }]);

  const changed = sageCli(["replay", job.workflowId, "--workflows", CHANGED_WORKFLOW, "--json"], { env: cliEnv(config) });
  assert.equal(changed.code, 1, changed.stderr);
  const [v, ...rest] = verdicts(changed.stdout);
  assert.equal(rest.length, 0);
  assert.equal(v?.workflowId, job.workflowId);
  assert.equal(v?.deterministic, false);
  assert.match(v?.error ?? "", /^DeterminismViolationError: /);
  // The first command that differs is named: the extra activity, or, in a run that recorded a patch
  // marker before its first activity (`sage-budget-pause`, at the workflow's start), that marker.
  assert.match(
    v?.error ?? "",
    /'sage:splits' does not match activity type of activity command 'sage:warm-up'|patch marker encountered for change sage-budget-pause, but there is no corresponding change command/,
  );
});

test("sage replay --file replays a committed history", () => {
  const config = testConfig("replay-file");
  const file = join("test", "replay", "histories", "unfused.json");
  const r = sageCli(["replay", "--file", file], { env: cliEnv(config) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `file:${file}: deterministic\n`);
  const changed = sageCli(["replay", "--file", file, "--workflows", join(REPO, CHANGED_WORKFLOW)], { env: cliEnv(config) });
  assert.equal(changed.code, 1, changed.stderr);
  assert.match(changed.stdout, /^file:test\/replay\/histories\/unfused\.json: NOT deterministic: DeterminismViolationError: [^\n]*'sage:warm-up'[^\n]*\n$/);
});

test("sage replay --failed --pipeline replays the failed runs of that pipeline", async () => {
  const config = testConfig("replay-failed", { "execution.split-bytes": "1kb" });
  const input = join(config.dir, "input.txt");
  writeFileSync(input, lines(60, 30));
  const jobId = `failing-${process.pid}`;
  await assert.rejects(runJob(fails, config, { input, output: join(config.dir, "out.jsonl") }, jobId), (err: unknown) => {
    assert.ok(err instanceof JobFailedError);
    assert.match(err.message, /cannot be serialized as JSON/);
    return true;
  });
  const workflowId = workflowIdOf(fails.name, jobId);
  await waitListedAsFailed(config, fails.name, workflowId);

  const r = sageCli(["replay", "--failed", "--pipeline", fails.name, "--json"], { env: cliEnv(config) });
  assert.equal(r.code, 0, r.stderr);
  const got = verdicts(r.stdout);
  assert.ok(got.length >= 1);
  const mine = got.find((v) => v.workflowId === workflowId);
  assert.ok(mine, `no verdict for ${workflowId} in ${r.stdout}`);
  assert.equal(mine.deterministic, true);
  assert.match(mine.runId, /^[0-9a-f-]{36}$/);
  for (const v of got) assert.match(v.workflowId, new RegExp(`^sage/${fails.name}/`));
});
