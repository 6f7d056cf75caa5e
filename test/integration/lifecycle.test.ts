/**
 * Function lifecycle on a real worker: `open(ctx)` once per operator instance per worker process
 * (not per split, not per job), before the first record; `close()` once at shutdown, after the last
 * record, also in a `sage worker` process stopped by SIGTERM; a failing `open` is retried with its
 * activity unless it throws NonRetryableError; a failing `close` does not stop the others.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ActivityFailure, type ApplicationFailure, type WorkflowFailedError } from "@temporalio/client";
import { RetryState } from "@temporalio/common";
import { JobFailedError, SageClient } from "../../client/sage-client.js";
import { cliEnv, sageCliBackground, startWorker, runJob, testConfig, readJsonl } from "../support/harness.js";
import processPipeline from "../fixtures/lifecycle-process.js";
import { fatalOpenPipeline, faults, flakyOpenPipeline, journal, lifecyclePipeline, type Event } from "../fixtures/lifecycle.js";

function writeInput(path: string, lines: number): string[] {
  const all = Array.from({ length: lines }, (_, i) => (i % 10 === 3 ? "" : `line number ${i} with some padding text`));
  writeFileSync(path, all.join("\n") + "\n");
  return all;
}

const events = (kind: Event["kind"], op?: string) => journal.filter((e) => e.kind === kind && (op === undefined || e.op === op));

test("open() runs once per operator per worker process across splits and jobs, close() once at shutdown", async () => {
  journal.length = 0;
  faults.closeThrows = false;
  const config = testConfig("lifecycle", { "execution.split-bytes": "1kb" });
  const input = join(config.dir, "in.txt");
  const lines = writeInput(input, 200);
  const worker = await startWorker(lifecyclePipeline, config);
  const client = await SageClient.connect({ config });
  try {
    for (const [jobId, flavour] of [
      ["first", "vanilla"],
      ["second", "mint"],
    ] as const) {
      const output = join(config.dir, `${jobId}.jsonl`);
      const job = await client.submit(lifecyclePipeline, { jobId, params: { input, output, flavour } });
      const result = await job.result();
      assert.ok(result.splitsTotal >= 4, `expected several splits, got ${result.splitsTotal}`);
      const want = lines.filter((l) => l !== "").map((line) => ({ line, tag: "v1@tagger-uid", job: jobId, param: flavour, attempt: 1 }));
      assert.deepEqual(readJsonl(output), want);
      assert.deepEqual(result.counts.count, { in: want.length, out: want.length, dead: 0 });
    }
    // Two jobs of many splits each, on two concurrent activity slots: still one open per function.
    assert.equal(events("open", "tagger").length, 1);
    assert.equal(events("open", "non-empty").length, 1);
    const taggerOpen = events("open", "tagger")[0] as Extract<Event, { kind: "open" }>;
    assert.deepEqual(taggerOpen.ctx, { operatorId: "tagger-uid", operatorName: "tagger", pipeline: "lifecycle", parallelism: 2 });
    const filterOpen = events("open", "non-empty")[0] as Extract<Event, { kind: "open" }>;
    assert.deepEqual(filterOpen.ctx, { operatorId: "non-empty", operatorName: "non-empty", pipeline: "lifecycle", parallelism: 2 });
    for (const op of ["tagger", "non-empty"]) {
      assert.ok(journal.indexOf(events("open", op)[0]!) < journal.indexOf(events("record", op)[0]!), `${op}: a record came before open()`);
    }
    assert.equal(events("record", "tagger").length, 2 * lines.length);
    assert.deepEqual(events("close"), [], "close() ran before the worker shut down");
  } finally {
    await client.close();
    await worker.stop();
  }
  // Every function with a close() is closed once, after its last record; `count` has close() but no open().
  assert.deepEqual(
    events("close")
      .map((e) => e.op)
      .sort(),
    ["count", "non-empty", "tagger"],
  );
  const lastRecord = journal.map((e) => e.kind).lastIndexOf("record");
  assert.ok(journal.findIndex((e) => e.kind === "close") > lastRecord);
});

test("an open() that fails is retried with its activity, and the job completes", async () => {
  faults.openCalls = 0;
  faults.openFailures = 1;
  const config = testConfig("lifecycle-flaky-open");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(flakyOpenPipeline, config, { output });
  assert.equal(faults.openCalls, 2, "one failed open, then exactly one successful open");
  assert.deepEqual(
    readJsonl(output),
    Array.from({ length: 12 }, (_, i) => i + 1),
  );
  assert.deepEqual(result.counts["flaky-open"], { in: 12, out: 12, dead: 0 });
  assert.equal(result.deadLetters, 0);
});

test("a close() that throws neither stops the other functions from closing nor the worker from stopping", async () => {
  journal.length = 0;
  faults.closeThrows = true;
  try {
    const config = testConfig("lifecycle-close-throws");
    const input = join(config.dir, "in.txt");
    writeInput(input, 20);
    const { result } = await runJob(lifecyclePipeline, config, { input, output: join(config.dir, "out.jsonl") });
    assert.equal(result.phase, "done");
    assert.deepEqual(
      events("close")
        .map((e) => e.op)
        .sort(),
      ["count", "non-empty", "tagger"],
    );
  } finally {
    faults.closeThrows = false;
  }
});

test("an open() that throws NonRetryableError fails the job at once, with its message", { timeout: 60_000 }, async () => {
  const config = testConfig("lifecycle-fatal-open");
  const output = join(config.dir, "out.jsonl");
  const err = await runJob(fatalOpenPipeline, config, { output }).then(
    () => assert.fail("the job succeeded"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof JobFailedError, String(err));
  assert.match(err.message, /stage:nums\+needs-key\+out failed: MODEL_API_KEY is not set/);
  // Not retried: the activity failed for good on its first attempt.
  const activity = ((err.cause as WorkflowFailedError).cause as ApplicationFailure).cause;
  assert.ok(activity instanceof ActivityFailure, String(activity));
  assert.equal(activity.retryState, RetryState.NON_RETRYABLE_FAILURE);
  assert.equal(existsSync(output), false);
});

test("a `sage worker` process opens each function once for all its jobs and closes it when stopped with SIGTERM", { timeout: 120_000 }, async () => {
  const config = testConfig("lifecycle-process");
  const events = join(config.dir, "events.log");
  // On the main thread (stage threads off): once per process. With threads, once per thread (test/integration/stage-threads.test.ts).
  const env = { ...cliEnv(config), SAGE_TEST_LIFECYCLE_LOG: events, SAGE_WORKER_THREADS: "0" };
  const child = sageCliBackground(["worker", "test/fixtures/lifecycle-process.ts"], { env });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit");
  const client = await SageClient.connect({ config });
  try {
    for (const jobId of ["p1", "p2"]) {
      const output = join(config.dir, `${jobId}.jsonl`);
      await (await client.submit(processPipeline, { jobId, params: { output } })).result();
      assert.equal(readFileSync(output, "utf8"), Array.from({ length: 40 }, (_, i) => `${i * i}\n`).join(""));
    }
    assert.deepEqual(readFileSync(events, "utf8").trim().split("\n"), [`open square ${child.pid}`]);
  } finally {
    await client.close();
    child.kill("SIGTERM");
  }
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, stderr);
  assert.deepEqual(readFileSync(events, "utf8").trim().split("\n"), [`open square ${child.pid}`, `close square ${child.pid}`]);
});
