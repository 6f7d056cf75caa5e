/**
 * Bad input on a real worker: each mistake fails the job at once (no pointless activity retries)
 * with an error that names the operator and the cause, publishes nothing, and records the error
 * code as the failure type; per-record mistakes go to the dead letters instead.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from "@temporalio/client";
import { RetryState } from "@temporalio/common";
import { JobFailedError, SageClient, SageJob, newJobId } from "../../client/sage-client.js";
import { taskQueueOf } from "../../client/task-queue.js";
import { MissingParameterError } from "../../core/errors.js";
import { PIPELINE_WORKFLOW, workflowIdOf, type JobInput, type JobResult } from "../../core/plan/job.js";
import type { SageConfig } from "../../core/config/schema.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import { REPO, cliEnv, runJob, sageCli, startWorker, testConfig } from "../support/harness.js";
import { deadLetterSinkPipeline } from "../fixtures/retries.js";
import { buggySourcePipeline, budgetPipeline, copyPipeline, copyPipelineV2, notIterablePipeline, unserializablePipeline } from "../fixtures/bad-input.js";

/** How a job failed: the job error's text, the failure type (our error code), and whether the activity was retried. */
interface Failure {
  message: string;
  type: string | undefined;
  activityType: string | undefined;
  retryState: RetryState | undefined;
}

/** Starts `pipeline` as another Temporal client could, past `submit`'s parameter check, and waits for its result. */
async function runUnchecked(pipeline: Pipeline, config: SageConfig, params: Record<string, string>): Promise<JobResult> {
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const { plan } = pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion });
    const jobId = newJobId();
    const input: JobInput = { jobId, plan, params, runtime: client.runtimeOptions() };
    const handle = await client.temporal.workflow.start(PIPELINE_WORKFLOW, {
      workflowId: workflowIdOf(pipeline.name, jobId),
      taskQueue: taskQueueOf(pipeline.name, config),
      args: [input],
    });
    return await new SageJob(handle, pipeline.name, jobId, plan).result();
  } finally {
    await client.close();
    await worker.stop();
  }
}

/** Runs a job that must fail and returns how it failed (`unchecked`: started past submit's parameter check). */
async function failingJob(pipeline: Pipeline, config: SageConfig, params: Record<string, string>, unchecked = false): Promise<Failure> {
  const err = await (unchecked ? runUnchecked(pipeline, config, params) : runJob(pipeline, config, params)).then(
    () => assert.fail("the job succeeded"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof JobFailedError, `expected JobFailedError, got ${String(err)}`);
  assert.ok(err.cause instanceof WorkflowFailedError);
  const jobFailure = err.cause.cause;
  assert.ok(jobFailure instanceof ApplicationFailure, `job failure: ${String(jobFailure)}`);
  const activity = jobFailure.cause;
  return {
    message: err.message,
    type: jobFailure.type ?? undefined,
    activityType: activity instanceof ActivityFailure ? activity.activityType : undefined,
    retryState: activity instanceof ActivityFailure ? activity.retryState : undefined,
  };
}

/** Asserts a failure of the first attempt (not retried) of `activityType` with code `type`. */
function assertFailedAtOnce(f: Failure, type: string, activityType: string, message: RegExp | string): void {
  assert.equal(f.type, type, f.message);
  assert.equal(f.activityType, activityType, f.message);
  assert.equal(f.retryState, RetryState.NON_RETRYABLE_FAILURE, `the activity was retried: ${f.message}`);
  if (typeof message === "string") assert.ok(f.message.includes(message), `${f.message}\ndoes not include\n${message}`);
  else assert.match(f.message, message);
}

function inputFile(dir: string, lines = 5): string {
  const path = join(dir, "in.txt");
  writeFileSync(path, Array.from({ length: lines }, (_, i) => ` line ${i} `).join("\n") + "\n");
  return path;
}

test("a missing input file fails the job at once, naming the source and the absolute path", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-missing-file");
  const input = join(config.dir, "does-not-exist.txt");
  const output = join(config.dir, "out.jsonl");
  const f = await failingJob(copyPipeline, config, { input, output });
  assertFailedAtOnce(f, "SOURCE", "sage:splits", `source "lines": cannot read input file "${input}": no such file (ENOENT)`);
  assert.equal(existsSync(output), false);
});

test("an input path that is a directory fails the job at once", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-input-dir");
  const input = join(config.dir, "a-directory");
  mkdirSync(input);
  const f = await failingJob(copyPipeline, config, { input, output: join(config.dir, "out.jsonl") });
  assertFailedAtOnce(f, "SOURCE", "sage:splits", `source "lines": input "${input}" is not a regular file`);
});

test(
  "a missing job parameter: submit refuses the job, and a job started past that check fails at once; both name the parameter and who needs it",
  { timeout: 60_000 },
  async () => {
    const config = testConfig("bad-missing-param");
    const input = inputFile(config.dir);
    const client = await SageClient.connect({ config });
    try {
      await assert.rejects(client.submit(deadLetterSinkPipeline, { jobId: "unstarted", params: {} }), (err: unknown) => {
        assert.ok(err instanceof MissingParameterError, String(err));
        assert.equal(err.code, "MISSING_PARAMETER");
        assert.match(err.message, /needs job parameters "output" \(needed by sink "out"\), "dead" \(needed by dead-letter sink\)/);
        assert.match(err.message, /pass --param output=\.\.\. --param dead=\.\.\./);
        return true;
      });
      // Refused before anything started.
      await assert.rejects(client.temporal.workflow.getHandle(workflowIdOf(deadLetterSinkPipeline.name, "unstarted")).describe(), /not found/);
    } finally {
      await client.close();
    }
    // The worker checks too, for a job some other client started.
    const noInput = await failingJob(copyPipeline, config, { output: join(config.dir, "out.jsonl") }, true);
    assertFailedAtOnce(noInput, "SOURCE", "sage:splits", 'source "lines" needs job parameter "input", which was not given (pass --param input=...)');
    const noOutput = await failingJob(copyPipeline, config, { input }, true);
    assertFailedAtOnce(noOutput, "SINK", "sage:splits", 'sink "out" needs job parameter "output", which was not given (pass --param output=...)');
    // Checked before any record is read, not at the commit after all the work.
    const noDeadLetters = await failingJob(deadLetterSinkPipeline, config, { output: join(config.dir, "out.jsonl") }, true);
    assertFailedAtOnce(noDeadLetters, "SINK", "sage:splits", 'dead-letter sink needs job parameter "dead", which was not given (pass --param dead=...)');
  },
);

test("an output path that is a directory fails the commit at once and publishes nothing", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-output-dir");
  const output = join(config.dir, "out-dir");
  mkdirSync(output);
  const f = await failingJob(copyPipeline, config, { input: inputFile(config.dir), output });
  assertFailedAtOnce(f, "SINK", "sage:commit", /commit of job ".+" failed: .*EISDIR/);
  // Nothing is left beside the target: no output inside the directory, no temporary file next to it.
  assert.deepEqual(readdirSync(output), []);
  assert.deepEqual(
    readdirSync(config.dir).filter((n) => n.startsWith("out-dir")),
    ["out-dir"],
  );
});

const unserializable = [
  { emit: "bigint", reason: 'key "total" is a BigInt (10n)' },
  { emit: "function", reason: 'key "callback" is a function' },
  { emit: "cycle", reason: "it contains a cycle" },
  { emit: "undefined", reason: "the record itself is undefined" },
  { emit: "nested-undefined", reason: 'key "1" is undefined' },
];

for (const fusion of [true, false]) {
  test(`a value JSON cannot carry fails the job, naming the operator and where it sits (fusion ${fusion ? "on" : "off"})`, { timeout: 90_000 }, async () => {
    for (const { emit, reason } of unserializable) {
      const config = testConfig(`bad-values-${emit}`, { "execution.fusion": fusion });
      const output = join(config.dir, "out.jsonl");
      const f = await failingJob(unserializablePipeline, config, { emit, output });
      const stage = fusion ? "stage:items+shape+out" : "stage:shape";
      assertFailedAtOnce(f, "NON_SERIALIZABLE", stage, `operator "shape" emitted a value that cannot be serialized as JSON: ${reason}`);
      assert.equal(existsSync(output), false, `${emit}: output was published`);
    }
  });
}

test("a record over the payload budget of workflow history fails the job, naming the operator and the setting", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-budget-record", { "execution.max-batch-bytes": "8kb" });
  const f = await failingJob(budgetPipeline, config, { input: inputFile(config.dir), output: join(config.dir, "out.jsonl"), size: "10000" });
  assertFailedAtOnce(
    f,
    "PAYLOAD_BUDGET",
    "stage:lines+blow-up",
    /operator "blow-up" emitted a record of \d+ bytes, over the payload budget of 8192 bytes \(execution\.max-batch-bytes\)/,
  );
});

test("a batch over the payload budget fails the job and says which settings to change", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-budget-batch", { "execution.max-batch-bytes": "8kb" });
  const f = await failingJob(budgetPipeline, config, { input: inputFile(config.dir, 20), output: join(config.dir, "out.jsonl"), fanout: "100" });
  assertFailedAtOnce(
    f,
    "PAYLOAD_BUDGET",
    "stage:lines+blow-up",
    /stage "lines\+blow-up" emitted more than 8192 bytes toward stage s1 .*lower execution\.split-bytes or raise execution\.max-batch-bytes/,
  );
});

test("a flatMap that returns no iterable dead-letters that record, saying what it returned; the job goes on", async () => {
  const config = testConfig("bad-flatmap");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(notIterablePipeline, config, { output });
  assert.deepEqual(readFileSync(output, "utf8"), "1\n1\n3\n3\n");
  assert.deepEqual(result.counts.dup, { in: 4, out: 4, dead: 2 });
  const letters = readFileSync(result.deadLetterPath!, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as { record: unknown; attempts: number; error: { message: string; code?: string } });
  assert.deepEqual(
    letters.map((l) => [l.record, l.attempts, l.error.code, l.error.message]),
    [
      [2, 1, "NON_RETRYABLE", 'flatMap "dup" must return an iterable (an array), got number'],
      [4, 1, "NON_RETRYABLE", 'flatMap "dup" must return an iterable (an array), got number'],
    ],
  );
});

test("a job submitted from another version of the pipeline fails at once with both plan hashes", { timeout: 60_000 }, async () => {
  const config = testConfig("bad-plan-mismatch");
  const worker = await startWorker(copyPipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(copyPipelineV2, { params: { input: inputFile(config.dir), output: join(config.dir, "out.jsonl") } });
    const err = await job.result().then(
      () => assert.fail("the job succeeded"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof JobFailedError);
    const served = copyPipeline.compile({ parallelism: config.execution.parallelism }).plan.hash;
    const submitted = copyPipelineV2.compile({ parallelism: config.execution.parallelism }).plan.hash;
    assert.notEqual(served, submitted);
    assert.ok(
      err.message.includes(`worker serves pipeline "bad-copy" with plan hash ${served}, but the job was submitted with plan hash ${submitted}`),
      err.message,
    );
    const failure = (err.cause as WorkflowFailedError).cause as ApplicationFailure;
    assert.equal(failure.type, "PLAN_MISMATCH");
  } finally {
    await client.close();
    await worker.stop();
  }
});

test("a user source whose splits() or read() returns the wrong thing fails the job at once, saying what it returned", { timeout: 60_000 }, async () => {
  const cases = [
    { bug: "splits-not-array", activity: "sage:splits", message: 'source "src": splits() must return an array of split descriptors, got undefined' },
    {
      bug: "splits-bigint",
      activity: "sage:splits",
      message:
        'source "src": splits() must return JSON split descriptors (they enter workflow history): operator "src" emitted a value that cannot be serialized as JSON: key "to" is a BigInt (10n)',
    },
    { bug: "read-number", activity: "stage:src+out", message: 'source "src": read() must return an iterable or async iterable of records, got number' },
  ];
  for (const c of cases) {
    const config = testConfig(`bad-source-${c.bug}`);
    const f = await failingJob(buggySourcePipeline, config, { bug: c.bug, output: join(config.dir, "out.jsonl") });
    assertFailedAtOnce(f, "SOURCE", c.activity, c.message);
  }
  // The same source without the bug works.
  const config = testConfig("bad-source-none");
  const output = join(config.dir, "out.jsonl");
  await runJob(buggySourcePipeline, config, { bug: "none", output });
  assert.equal(readFileSync(output, "utf8"), "1\n2\n3\n");
});

test("sage run reports a missing input file on stderr with exit code 1", () => {
  const config = testConfig("bad-cli-missing-file");
  const input = join(config.dir, "nope.txt");
  const r = sageCli(["run", "examples/wordcount/pipeline.ts", "--param", `input=${input}`, "--param", `output=${join(config.dir, "out.jsonl")}`], {
    env: cliEnv(config),
    cwd: REPO,
  });
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`cannot read input file "${input}": no such file (ENOENT)`), r.stderr);
});

test("sage run refuses a --param without a value before it submits anything", () => {
  const config = testConfig("bad-cli-param");
  const r = sageCli(["run", "examples/wordcount/pipeline.ts", "--param", "input"], { env: cliEnv(config), cwd: REPO });
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes('--param "input" must look like name=value'), r.stderr);
});
