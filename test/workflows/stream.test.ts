/**
 * Fast tests of the partition workflow's own logic on the time-skipping test server: its offset
 * table, its checkpoints (continue-as-new by events or by history bytes, with and without a shim's
 * hold), the batches it carries into the next run, its retries, and a savepoint barrier deferring timers. The stage activity is a test
 * function that records what it was given; the real stage runs in the integration tests.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { temporal } from "@temporalio/proto";
import { Worker } from "@temporalio/worker";
import { KafkaSink, KafkaSource } from "../../core/api/connectors.js";
import { definePipeline } from "../../core/api/pipeline.js";
import { stageActivityType, type JobRuntimeOptions, type StageInput, type StageOutput, type StreamSlice } from "../../core/plan/job.js";
import { STREAM_WORKFLOW, topicPartition, type StreamJobInput, type StreamProgress } from "../../core/plan/stream.js";
import { batchSignal, holdSignal, savepointAckSignal, savepointBarrierSignal, savepointReleaseSignal, streamProgressQuery } from "../../workflows/contract.js";
import type { streamWorkflow } from "../../workflows/stream.js";
import { until } from "../support/harness.js";
import { startTestServer, workflowBundle, type WorkflowTestServer } from "./environment.js";

/** Longest wait for one progress query before asking again. */
const QUERY_DEADLINE_MS = 5_000;
const TOPIC = "in";
const TP = topicPartition(TOPIC, 0);

const pipeline = definePipeline("wf-stream", (env) =>
  env
    .fromSource(KafkaSource.topic<{ n: number }>(TOPIC, { groupId: "g" }), { name: "in" })
    .map((r) => r, { name: "same" })
    .sink(KafkaSink.topic("out"), { name: "out" }),
);
const { plan } = pipeline.compile({ parallelism: 1 });
const STAGE = plan.stages[0]!;

/** Runtime options with budgets far away unless a test sets them. */
function runtime(overrides: Partial<JobRuntimeOptions> = {}): JobRuntimeOptions {
  return {
    activityTimeoutMs: 60_000,
    heartbeatTimeoutMs: 10_000,
    maxBatchBytes: 512 * 1024,
    splitBytes: 1024 * 1024,
    splitPrefetch: 1,
    localActivities: true,
    eventsPerRun: 100_000,
    historyBytesPerRun: 512 * 1024 * 1024,
    deadLetterPath: null,
    ...overrides,
  };
}

/** One call of the stage activity: its slices and the sizes of their record payloads. */
interface StageCall {
  slices: StreamSlice[];
  sizes: number[];
}

/** Records each call; `before` runs first (to block or fail a call). */
function stageActivity(calls: StageCall[], before: (call: number) => Promise<void> = async () => {}) {
  return async (input: StageInput, ...records: Uint8Array[]): Promise<StageOutput> => {
    const call = calls.length;
    await before(call);
    const slices = input.stream!.slices;
    calls.push({ slices, sizes: records.map((r) => r.byteLength) });
    const n = slices.reduce((k, s) => k + s.to - Math.max(s.from, s.skipBelow) + 1, 0);
    return { counts: { same: { in: n, out: n, dead: 0 } }, outputs: {} };
  };
}

let server: WorkflowTestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

let jobs = 0;
/** A partition workflow of a fresh job on its own task queue, and a worker that runs it while `body` runs. */
async function withWorkflow(
  options: { runtime?: Partial<JobRuntimeOptions>; activity: ReturnType<typeof stageActivity> },
  body: (w: ReturnType<typeof partitionWorkflow>) => Promise<void>,
): Promise<void> {
  const jobId = `job-${++jobs}`;
  const taskQueue = `wf-${jobId}`;
  const worker = await Worker.create({
    connection: server.env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: { [stageActivityType(STAGE.name)]: options.activity },
  });
  const input: StreamJobInput = {
    jobId,
    plan,
    params: {},
    runtime: runtime(options.runtime),
    stream: { deadLetterTopic: "dlq" },
    index: 0,
    workflows: 1,
  };
  await worker.runUntil(body(partitionWorkflow(input, taskQueue)));
}

/** What a test does with its partition workflow: send batches as the shim does, query, hold, stop. */
function partitionWorkflow(input: StreamJobInput, taskQueue: string) {
  const client = server.env.client;
  const workflowId = `sage/${plan.pipeline}/${input.jobId}/p0`;
  const handle = client.workflow.getHandle<typeof streamWorkflow>(workflowId);
  return {
    handle,
    /** One batch signal carrying batches of offsets `[from, to]`, each with `size` bytes of records. */
    async send(batches: Array<[from: number, to: number]>, size = 16): Promise<void> {
      const descriptions = batches.map(([from, to]) => ({ topic: TOPIC, partition: 0, from, to, count: to - from + 1, bytes: size, cutAt: 0 }));
      await client.workflow.signalWithStart(STREAM_WORKFLOW, {
        workflowId,
        taskQueue,
        // The server's default for a running workflow; the test server needs it said.
        workflowIdConflictPolicy: "USE_EXISTING",
        args: [input],
        signal: batchSignal,
        signalArgs: [descriptions, ...batches.map(() => new Uint8Array(size))],
      });
    },
    /** Waits until the workflow's progress satisfies `ok`. */
    until: (what: string, ok: (p: StreamProgress) => boolean): Promise<StreamProgress> =>
      until(what, async () => {
        // A query that lands while a run hands over to the next can go unanswered: ask again.
        const p = await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle.query(streamProgressQuery));
        return ok(p) ? p : undefined;
      }),
    /** The events of one run so far. */
    async events(runId: string): Promise<temporal.api.history.v1.IHistoryEvent[]> {
      return (await client.workflow.getHandle(workflowId, runId).fetchHistory()).events ?? [];
    },
    /** True when the latest run continued from run `runId` (the test server does not show the close in the old run's history). */
    async continuedFrom(runId: string): Promise<boolean> {
      const started = (await handle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
      return started?.continuedExecutionRunId === runId;
    },
  };
}

/** Names of the signals in a run's events. */
function signalsOf(events: temporal.api.history.v1.IHistoryEvent[]): string[] {
  return events.flatMap((e) => e.workflowExecutionSignaledEventAttributes?.signalName ?? []);
}

/** Sends batches of ten records, one signal each, until `done` holds; returns the progress then and the next offset. */
async function feedUntil(w: ReturnType<typeof partitionWorkflow>, what: string, done: (p: StreamProgress) => boolean, size = 16) {
  for (let from = 0; from < 2_000; from += 10) {
    await w.send([[from, from + 9]], size);
    const p = await w.until(`batch at ${from} processed`, (p) => (p.processed[TP] ?? 0) >= from + 10);
    if (done(p)) return { progress: p, next: from + 10 };
  }
  throw new Error(`never saw ${what}`);
}

test("a run that used its event budget asks for a hold; held, it continues as new at once, with its offsets and counts", async () => {
  const calls: StageCall[] = [];
  await withWorkflow({ runtime: { eventsPerRun: 30 }, activity: stageActivity(calls) }, async (w) => {
    const { progress: asked, next } = await feedUntil(w, "a checkpoint request", (p) => p.checkpoint === true);
    const first = asked.runId!;
    await w.handle.signal(holdSignal, first);
    const resumed = await w.until("the next run", (p) => p.runId !== first);
    assert.equal(resumed.runs, 2);
    assert.equal(resumed.checkpoint, false);
    assert.deepEqual(resumed.next, { [TP]: next });
    assert.deepEqual(resumed.processed, { [TP]: next });
    assert.equal(resumed.counts["same"]?.in, next);
    assert.ok(await w.continuedFrom(first), "the latest run did not continue from the held run");
    const events = await w.events(first);
    assert.ok(signalsOf(events).includes("sage:hold"));
    // Held: it closed right away, well before twice its budget (when it would have closed on its own).
    assert.ok(events.length < 60, `the held run had ${events.length} events`);
    await w.send([[next, next + 9]]);
    await w.until("a batch in the next run", (p) => p.processed[TP] === next + 10);
    assert.equal(calls.length, next / 10 + 1);
  });
});

test("with no hold, a run that used its event budget continues as new by itself at twice the budget", async () => {
  const calls: StageCall[] = [];
  await withWorkflow({ runtime: { eventsPerRun: 20 }, activity: stageActivity(calls) }, async (w) => {
    const first = (await (await w.send([[0, 9]]), w.until("the first batch", (p) => p.processed[TP] === 10))).runId!;
    const { progress, next } = await feedUntil(w, "a second run", (p) => p.runs === 2);
    assert.ok(await w.continuedFrom(first), "the second run did not continue from the first");
    const events = await w.events(first);
    assert.ok(!signalsOf(events).includes("sage:hold"));
    assert.ok(events.length >= 40, `the first run closed after ${events.length} events, before twice its budget`);
    assert.deepEqual(progress.processed, { [TP]: next });
    assert.equal(progress.counts["same"]?.in, next);
    assert.equal(calls.length, next / 10);
  });
});

test("a run that used its budget of history bytes asks for a checkpoint too", async () => {
  const calls: StageCall[] = [];
  await withWorkflow({ runtime: { historyBytesPerRun: 64 * 1024 }, activity: stageActivity(calls) }, async (w) => {
    const { progress } = await feedUntil(w, "a checkpoint request", (p) => p.checkpoint === true, 8 * 1024);
    const events = await w.events(progress.runId!);
    // Eight batches of 8 KiB fill the byte budget long before any event budget.
    assert.ok(events.length < 100, `asked after ${events.length} events`);
    assert.ok(calls.length >= 7, `asked after ${calls.length} batches of 8 KiB`);
  });
});

test("batches waiting when the hold comes go into the next run with their records, and run there once", async () => {
  const calls: StageCall[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const running = new Promise<void>((r) => (entered = r));
  const activity = stageActivity(calls, async (call) => {
    if (call > 0) return;
    entered();
    await gate;
  });
  await withWorkflow({ runtime: { localActivities: false }, activity }, async (w) => {
    await w.send([[0, 9]]);
    // The next batches arrive while the first one runs (else the three would run together).
    await running;
    await w.send([[10, 19]], 100);
    await w.send([[20, 29]], 200);
    const waiting = await w.until("three batches accepted", (p) => p.pending === 3);
    await w.handle.signal(holdSignal, waiting.runId!);
    release();
    const resumed = await w.until("the carried batches run", (p) => p.runs === 2 && p.processed[TP] === 30);
    assert.equal(resumed.pending, 0);
    assert.equal(resumed.counts["same"]?.in, 30);
    // The first run ran one batch; the next one ran both carried batches in one call, records intact.
    assert.deepEqual(
      calls.map((c) => c.slices.map((s) => [s.from, s.to, s.skipBelow, s.seq])),
      [
        [[0, 9, 0, 1]],
        [
          [10, 19, 10, 2],
          [20, 29, 20, 3],
        ],
      ],
    );
    assert.deepEqual(calls[1]!.sizes, [100, 200]);
  });
});

test("a batch delivered twice is dropped, and one cut differently after a crash is trimmed", async () => {
  const calls: StageCall[] = [];
  await withWorkflow({ activity: stageActivity(calls) }, async (w) => {
    await w.send([[0, 9]]);
    await w.until("the first batch", (p) => p.processed[TP] === 10);
    await w.send([[0, 9]]);
    await w.until("the duplicate dropped", (p) => p.duplicatesDropped === 10);
    await w.send([[5, 14]]);
    const p = await w.until("the overlapping batch", (p) => p.processed[TP] === 15);
    assert.equal(calls.length, 2);
    assert.deepEqual(
      calls[1]!.slices.map((s) => [s.from, s.to, s.skipBelow]),
      [[5, 14, 10]],
    );
    assert.equal(p.counts["same"]?.in, 15);
    assert.equal(p.records, 20);
  });
});

test("a savepoint's barrier defers processing-time timers until it is released; the shim's acknowledgement shows in the progress", async () => {
  const calls: StageCall[] = [];
  const record = stageActivity(calls);
  // A unit with records leaves a processing-time timer a minute ahead; a timer unit (no slices) leaves none.
  const activity = async (input: StageInput, ...records: Uint8Array[]): Promise<StageOutput> => ({
    ...(await record(input, ...records)),
    nextTimer: input.stream!.slices.length > 0 ? Date.now() + 60_000 : null,
  });
  await withWorkflow({ activity }, async (w) => {
    await w.send([[0, 9]]);
    await w.until("the first batch", (p) => p.processed[TP] === 10);
    await w.handle.signal(savepointBarrierSignal, "sp-1");
    await w.until("the barrier", (p) => p.barrier?.id === "sp-1" && !p.barrier.acked);
    await w.handle.signal(savepointAckSignal, "sp-other");
    await w.handle.signal(savepointAckSignal, "sp-1");
    await w.until("the acknowledgement", (p) => p.barrier?.acked === true);
    await server.env.sleep(120_000);
    assert.equal(calls.filter((c) => c.slices.length === 0).length, 0, "no timer fired under the barrier, past its time");
    await w.handle.signal(savepointReleaseSignal, "sp-1");
    await w.until("the release", (p) => p.barrier === undefined);
    await server.env.sleep(1_000);
    await until("the deferred timer's unit", async () => (calls.some((c) => c.slices.length === 0) ? true : undefined));
    assert.equal(calls.filter((c) => c.slices.length === 0).length, 1);
  });
});
