/**
 * Recovery and control against the real dev server: a worker killed with SIGKILL mid-job, two
 * workers sharing a task queue, cancellation (client and `sage stop`), `sage rerun` of a terminated
 * and of a failed job, and `sage status`. Workers run as separate `sage worker` processes where a
 * process has to die or two have to share the work.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import proto from "@temporalio/proto";
import type { SageConfig } from "../../core/config/schema.js";
import type { StageCounts } from "../../core/plan/job.js";
import { rerunJob } from "../../replay/rerun.js";
import { SageClient, type SageJob } from "../../client/sage-client.js";
import { jobStagingDir } from "../../connectors/file/staging.js";
import pipeline, { recordOf } from "../fixtures/recovery.js";
import { cliEnv, sageCli, scratchDir, startWorker, startWorkerProcess, testConfig, until, progressUntil, type WorkerProcess } from "../support/harness.js";

const FIXTURE = "test/fixtures/recovery.ts";
const LINES = 30_000;
/** Small splits: the 30k-line input becomes dozens of splits (one stage activity each). */
const SPLITS = { "execution.split-bytes": "16kb" };

const EventType = proto.temporal.api.enums.v1.EventType;

/** A job id unique on the server (workflow ids outlive a test process; a dev server may be reused). */
function jobIdOf(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}`;
}

interface Shared {
  input: string;
  /** The exact bytes an uninterrupted run writes, computed in plain TypeScript. */
  expected: Buffer;
  lines: number;
}

let shared: Shared | undefined;
/** One input file for every test (~1.4 MB, ~85 splits of 16 kB) and its reference output. */
function fixtureInput(): Shared {
  if (shared) return shared;
  const dir = scratchDir("recovery-input");
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];
  const lines: string[] = [];
  let seed = 7;
  for (let i = 0; i < LINES; i++) {
    const n = 3 + (i % 5);
    const ws: string[] = [];
    for (let k = 0; k < n; k++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      ws.push(words[seed % words.length]!);
    }
    lines.push(`${i} ${ws.join(" ")}`);
  }
  const input = join(dir, "input.txt");
  writeFileSync(input, lines.map((l) => `${l}\n`).join(""));
  const expected = Buffer.from(lines.map((l) => `${JSON.stringify(recordOf(l))}\n`).join(""));
  shared = { input, expected, lines: lines.length };
  return shared;
}

/** Counts a correct run reports: every line once through every operator, no dead letters. */
function expectedCounts(n: number): StageCounts {
  const c = { in: n, out: n, dead: 0 };
  return { lines: c, work: c, out: c };
}

/** The history events of every run of a job, following continue-as-new from its first run. */
async function chainEvents(client: SageClient, job: SageJob): Promise<proto.temporal.api.history.v1.IHistoryEvent[]> {
  const all: proto.temporal.api.history.v1.IHistoryEvent[] = [];
  let runId: string | undefined = job.runId;
  while (runId) {
    const events = (await client.temporal.workflow.getHandle(job.workflowId, runId).fetchHistory()).events ?? [];
    all.push(...events);
    runId = events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return all;
}

/** Worker identities that ran (the final attempt of) each stage activity, over all runs of the job. */
async function stageIdentities(client: SageClient, job: SageJob): Promise<string[]> {
  const stageEvents = new Set<string>();
  const ids: string[] = [];
  let run = 0;
  for (const e of await chainEvents(client, job)) {
    // Event ids restart in each run.
    if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED) run++;
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && e.activityTaskScheduledEventAttributes?.activityType?.name?.startsWith("stage:")) {
      stageEvents.add(`${run}/${String(e.eventId)}`);
    }
    const started = e.activityTaskStartedEventAttributes;
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && stageEvents.has(`${run}/${String(started?.scheduledEventId)}`)) {
      ids.push(started?.identity ?? "");
    }
  }
  return ids;
}

function readOutput(path: string): Buffer {
  return readFileSync(path);
}

function lastJsonLine<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split("\n").pop()!) as T;
}

test("a worker killed with SIGKILL mid-job (stage threads on): a second worker finishes it, output identical to an uninterrupted run", async () => {
  const { input, expected, lines } = fixtureInput();
  const config = testConfig("kill9", SPLITS);
  const client = await SageClient.connect({ config });
  const workers: WorkerProcess[] = [];
  // Two stage threads whatever the machine's cores: the killed worker dies with splits on its threads.
  const threaded = { ...cliEnv(config), SAGE_WORKER_THREADS: "2", SAGE_LOG_LEVEL: "info" };
  try {
    const first = await startWorkerProcess(FIXTURE, config, client, threaded);
    workers.push(first);
    assert.match(first.log(), /"stageThreads":2/, "the worker did not start its stage threads");
    const killedOut = join(config.dir, "killed.jsonl");
    const job = await client.submit(pipeline, { jobId: jobIdOf("killed"), params: { input, output: killedOut, rounds: "200" } });
    const before = await progressUntil(job, "a fifth of the splits", (p) => p.splitsTotal > 0 && p.splitsDone >= p.splitsTotal / 5);
    first.child.kill("SIGKILL");
    assert.ok(before.splitsTotal >= 40, `expected dozens of splits, got ${before.splitsTotal}`);
    assert.ok(before.splitsDone < before.splitsTotal, `the job finished before the kill (${before.splitsDone}/${before.splitsTotal})`);

    const second = await startWorkerProcess(FIXTURE, config, client, threaded);
    workers.push(second);
    const result = await job.result();
    assert.equal(result.phase, "done");
    assert.equal(result.splitsDone, result.splitsTotal);
    assert.deepEqual(result.counts, expectedCounts(lines));
    const ran = new Set(await stageIdentities(client, job));
    assert.ok(ran.has(first.identity), `the killed worker ran no stage activity: ${[...ran].join(", ")}`);
    assert.ok(ran.has(second.identity), `the second worker ran no stage activity: ${[...ran].join(", ")}`);

    const cleanOut = join(config.dir, "uninterrupted.jsonl");
    const clean = await client.submit(pipeline, { jobId: jobIdOf("uninterrupted"), params: { input, output: cleanOut, rounds: "200" } });
    const cleanResult = await clean.result();
    assert.deepEqual(cleanResult.counts, expectedCounts(lines));
    assert.ok(readOutput(killedOut).equals(readOutput(cleanOut)), "killed and uninterrupted runs wrote different bytes");
    assert.equal(readOutput(killedOut).toString().split("\n").length - 1, lines);
    assert.ok(readOutput(killedOut).equals(expected), "output differs from the reference computed in TypeScript");
  } finally {
    for (const w of workers) await w.stop();
    await client.close();
  }
});

test("two worker processes on one task queue both run stage activities of one job", async () => {
  const { input, expected, lines } = fixtureInput();
  const config = testConfig("two-workers", SPLITS);
  const client = await SageClient.connect({ config });
  const workers: WorkerProcess[] = [];
  try {
    workers.push(await startWorkerProcess(FIXTURE, config, client), await startWorkerProcess(FIXTURE, config, client));
    const output = join(config.dir, "out.jsonl");
    const job = await client.submit(pipeline, { jobId: jobIdOf("shared"), parallelism: 4, params: { input, output, rounds: "50" } });
    const result = await job.result();
    assert.deepEqual(result.counts, expectedCounts(lines));
    const ran = await stageIdentities(client, job);
    assert.equal(ran.length, result.splitsTotal);
    for (const w of workers) assert.ok(ran.includes(w.identity), `${w.identity} ran none of the ${ran.length} stage activities`);
    assert.ok(readOutput(output).equals(expected));
  } finally {
    for (const w of workers) await w.stop();
    await client.close();
  }
});

/** Asserts a cancelled job: result rejects, status CANCELLED, nothing published, staging removed. */
async function assertCancelled(job: SageJob, config: SageConfig, output: string, worker: WorkerProcess): Promise<void> {
  await assert.rejects(job.result());
  assert.equal((await job.describe()).status.name, "CANCELLED");
  // Stop the worker first: whatever it still had in flight has then finished, so nothing can write later.
  await worker.stop();
  assert.equal(existsSync(output), false, `a cancelled job published ${output}`);
  const staging = jobStagingDir(config["data-dir"], pipeline.name, job.jobId);
  assert.equal(existsSync(staging), false, `a cancelled job left its staging folder ${staging}`);
}

test("cancelling a running job from the client removes its staged output and publishes nothing", async () => {
  const { input } = fixtureInput();
  const config = testConfig("cancel", SPLITS);
  const client = await SageClient.connect({ config });
  const worker = await startWorkerProcess(FIXTURE, config, client);
  try {
    const output = join(config.dir, "out.jsonl");
    const job = await client.submit(pipeline, { jobId: jobIdOf("cancel-me"), params: { input, output, rounds: "0", pauseMs: "1" } });
    const p = await progressUntil(job, "two splits", (q) => q.splitsDone >= 2);
    assert.ok(p.splitsDone < p.splitsTotal);
    await job.cancel();
    await assertCancelled(job, config, output, worker);
  } finally {
    await worker.stop();
    await client.close();
  }
});

test("`sage stop <jobId>` cancels a running job", async () => {
  const { input } = fixtureInput();
  const config = testConfig("stop", SPLITS);
  const client = await SageClient.connect({ config });
  const worker = await startWorkerProcess(FIXTURE, config, client);
  try {
    const output = join(config.dir, "out.jsonl");
    const job = await client.submit(pipeline, { jobId: jobIdOf("stop-me"), params: { input, output, rounds: "0", pauseMs: "1" } });
    await progressUntil(job, "one split", (q) => q.splitsDone >= 1);
    const r = sageCli(["stop", job.jobId], { env: cliEnv(config) });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`cancellation requested for ${job.workflowId}`));
    await assertCancelled(job, config, output, worker);
  } finally {
    await worker.stop();
    await client.close();
  }
});

interface RerunJson {
  phase: string;
  splitsDone: number;
  splitsTotal: number;
  counts: StageCounts;
  reusedSplits: number;
  outputs: Record<string, string>;
}

test("`sage rerun` of a terminated job reuses its completed splits and writes the uninterrupted output", async () => {
  const { input, expected, lines } = fixtureInput();
  const config = testConfig("rerun-terminated", SPLITS);
  const output = join(config.dir, "out.jsonl");
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  let job: SageJob;
  try {
    job = await client.submit(pipeline, { jobId: jobIdOf("terminated"), params: { input, output, rounds: "100" } });
    const p = await progressUntil(job, "a third of the splits", (q) => q.splitsTotal > 0 && q.splitsDone >= q.splitsTotal / 3);
    await job.handle.terminate("test");
    assert.ok(p.splitsDone < p.splitsTotal);
    assert.equal((await job.describe()).status.name, "TERMINATED");
  } finally {
    await client.close();
    await w.stop();
  }
  assert.equal(existsSync(output), false);

  const r = sageCli(["rerun", job.workflowId, "--module", FIXTURE, "--json"], { env: cliEnv(config) });
  assert.equal(r.code, 0, r.stderr);
  const result = lastJsonLine<RerunJson>(r.stdout);
  assert.equal(result.phase, "done");
  assert.ok(result.reusedSplits > 0, `no split was reused: ${r.stderr}`);
  assert.ok(result.reusedSplits < result.splitsTotal);
  assert.equal(result.splitsDone, result.splitsTotal);
  assert.deepEqual(result.counts, expectedCounts(lines));
  assert.ok(readOutput(output).equals(expected), "rerun output differs from an uninterrupted run");
});

test("rerun of a job terminated after it continued as new reuses the splits of every earlier run", async () => {
  const { input, expected, lines } = fixtureInput();
  // ~4x the splits of the other tests: history passes the test server's continue-as-new suggestion.
  const config = testConfig("rerun-continued", { "execution.split-bytes": "4kb" });
  const output = join(config.dir, "out.jsonl");
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(pipeline, { jobId: jobIdOf("continued"), params: { input, output, rounds: "0" } });
    const first = client.temporal.workflow.getHandle(job.workflowId, job.runId);
    await until("the first run to continue as new", async () => ((await first.describe()).status.name === "CONTINUED_AS_NEW" ? true : undefined));
    const atContinue = (await progressUntil(job, "the second run to start", (p) => p.phase === "running")).splitsDone;
    const before = await progressUntil(job, "splits done in the second run", (p) => p.splitsDone > atContinue);
    await job.handle.terminate("test");
    assert.ok(before.splitsDone < before.splitsTotal, "the job finished before it was terminated");

    const rerun = await rerunJob(client.temporal, job.workflowId);
    assert.ok(rerun.reused >= before.splitsDone, `reused ${rerun.reused} splits, but ${before.splitsDone} were done before the terminate`);
    const result = await (await client.job(job.workflowId)).result();
    assert.deepEqual(result.counts, expectedCounts(lines));
    assert.equal(result.splitsDone, result.splitsTotal);
    assert.ok(readOutput(output).equals(expected), "rerun output differs from an uninterrupted run");
  } finally {
    await client.close();
    await w.stop();
  }
});

test("a job that fails for good midway succeeds on rerun once the cause is gone, with the same output", async () => {
  const { input, expected, lines } = fixtureInput();
  const config = testConfig("rerun-failed", SPLITS);
  const output = join(config.dir, "out.jsonl");
  const marker = join(config.dir, "poison.marker");
  mkdirSync(config.dir, { recursive: true });
  writeFileSync(marker, "while this file exists, record `poison` carries a BigInt\n");
  const params = { input, output, rounds: "20", poison: String(Math.floor(lines * 0.7)), marker };
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(pipeline, { jobId: jobIdOf("poisoned"), params });
    await assert.rejects(job.result(), (err: Error) => {
      assert.match(err.message, /operator "work"/);
      assert.match(err.message, /BigInt/);
      return true;
    });
    assert.equal((await job.describe()).status.name, "FAILED");
    assert.equal(existsSync(output), false);

    rmSync(marker);
    const rerun = await rerunJob(client.temporal, job.workflowId);
    assert.ok(rerun.reused > 0, "the splits before the poisoned record were not reused");
    const again = await client.job(job.workflowId);
    const result = await again.result();
    assert.equal(result.phase, "done");
    assert.deepEqual(result.counts, expectedCounts(lines));
    assert.equal((await again.describe()).runId, rerun.runId);
    assert.ok(readOutput(output).equals(expected), "rerun output differs from an uninterrupted run");
  } finally {
    await client.close();
    await w.stop();
  }
});

test("`sage status <jobId> --json` shows a completed job and its counts", async () => {
  const { input, lines } = fixtureInput();
  const config = testConfig("status", SPLITS);
  const output = join(config.dir, "out.jsonl");
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const jobId = jobIdOf("status-done");
  try {
    await (await client.submit(pipeline, { jobId, params: { input, output, rounds: "0" } })).result();
  } finally {
    await client.close();
    await w.stop();
  }
  const r = sageCli(["status", jobId, "--json"], { env: cliEnv(config) });
  assert.equal(r.code, 0, r.stderr);
  const s = lastJsonLine<{ workflowId: string; status: string; detail: RerunJson }>(r.stdout);
  assert.equal(s.workflowId, `sage/recovery/${jobId}`);
  assert.equal(s.status, "COMPLETED");
  assert.equal(s.detail.phase, "done");
  assert.deepEqual(s.detail.counts, expectedCounts(lines));
  assert.deepEqual(s.detail.outputs, { out: output });
});
