/**
 * Fast tests of key-group ownership with stages as activities (`kafka.local-activities: false`), on
 * the time-skipping test server: a keyed stage's next unit goes to the task queue its last unit's
 * worker named (the worker that holds the state), and when nobody picks it up there within the
 * schedule-to-start timeout, it goes to the shared queue. The stage activity is a test function
 * that records the queue it ran from.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Context } from "@temporalio/activity";
import proto from "@temporalio/proto";
import { Worker } from "@temporalio/worker";
import { KafkaSink, KafkaSource } from "../../core/api/connectors.js";
import { definePipeline } from "../../core/api/pipeline.js";
import { stageActivityType, type JobRuntimeOptions, type StageInput, type StageOutput } from "../../core/plan/job.js";
import { STREAM_WORKFLOW, keyedOperatorsOf, topicPartition, type StreamJobInput, type StreamProgress } from "../../core/plan/stream.js";
import { batchSignal, streamProgressQuery } from "../../workflows/contract.js";
import type { streamWorkflow } from "../../workflows/stream.js";
import { until } from "../support/harness.js";
import { startTestServer, workflowBundle, type WorkflowTestServer } from "./environment.js";

const TOPIC = "in";
const TIMEOUT_SCHEDULE_TO_START = proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START;
const TP = topicPartition(TOPIC, 0);

// A source-partitioned keyBy: the keyed operator runs in the source's stage, so one stage keeps state.
const pipeline = definePipeline("wf-owners", (env) =>
  env
    .fromSource(KafkaSource.topic<{ k: string }>(TOPIC, { groupId: "g" }), { name: "in" })
    .keyBy((r) => r.k, { name: "by-k", sourcePartitioned: true })
    .reduce((_a, b) => b, { name: "last" })
    .sink(KafkaSink.topic("out"), { name: "out" }),
);
const { plan } = pipeline.compile({ parallelism: 1 });
const STAGE = plan.stages[0]!;

const runtime: JobRuntimeOptions = {
  activityTimeoutMs: 60_000,
  heartbeatTimeoutMs: 10_000,
  maxBatchBytes: 512 * 1024,
  splitBytes: 1024 * 1024,
  splitPrefetch: 1,
  localActivities: false,
  eventsPerRun: 100_000,
  historyBytesPerRun: 512 * 1024 * 1024,
  deadLetterPath: null,
};

/** A stage activity that records the queue each unit ran from, and names `owner` as the queue to come back to. */
function keyedStage(ranOn: string[], owner: string) {
  return async (input: StageInput): Promise<StageOutput> => {
    ranOn.push(Context.current().info.taskQueue);
    const n = input.stream!.slices.reduce((k, s) => k + s.to - s.from + 1, 0);
    return { counts: { last: { in: n, out: n, dead: 0 } }, outputs: {}, states: {}, ownerQueue: owner };
  };
}

let server: WorkflowTestServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.stop();
});

/**
 * A partition workflow on `shared`, run by a worker there whose units name `owner`, plus an
 * activity worker on `owner` unless `ownerPolls` is false; `body` gets a sender of batches and a
 * wait for the workflow's progress. Returns the queue of each stage activity the workflow scheduled,
 * and how many of them nobody picked up in time, from its history.
 */
async function withOwners(
  job: string,
  owner: string,
  ownerPolls: boolean,
  ranOn: string[],
  body: (send: (from: number, to: number) => Promise<void>, progress: (ok: (p: StreamProgress) => boolean) => Promise<StreamProgress>) => Promise<void>,
): Promise<{ scheduledOn: string[]; notPickedUp: number }> {
  const shared = `wf-${job}`;
  const activities = { [stageActivityType(STAGE.name)]: keyedStage(ranOn, owner) };
  const worker = await Worker.create({ connection: server.env.nativeConnection, taskQueue: shared, workflowBundle: await workflowBundle(), activities });
  const own = ownerPolls ? await Worker.create({ connection: server.env.nativeConnection, taskQueue: owner, activities }) : null;
  const input: StreamJobInput = { jobId: job, plan, params: {}, runtime, stream: { deadLetterTopic: "dlq" }, index: 0, workflows: 1 };
  const client = server.env.client;
  const workflowId = `sage/${plan.pipeline}/${job}/p0`;
  const send = async (from: number, to: number): Promise<void> => {
    await client.workflow.signalWithStart(STREAM_WORKFLOW, {
      workflowId,
      taskQueue: shared,
      workflowIdConflictPolicy: "USE_EXISTING",
      args: [input],
      signal: batchSignal,
      signalArgs: [[{ topic: TOPIC, partition: 0, from, to, count: to - from + 1, bytes: 8, cutAt: 0 }], new Uint8Array(8)],
    });
  };
  const progress = (ok: (p: StreamProgress) => boolean): Promise<StreamProgress> =>
    until("the workflow's progress", async () => {
      const p = await client.workflow.getHandle<typeof streamWorkflow>(workflowId).query(streamProgressQuery);
      return ok(p) ? p : undefined;
    });
  const running = body(send, progress);
  await (own ? own.runUntil(worker.runUntil(running)) : worker.runUntil(running));
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return {
    scheduledOn: events.flatMap((e) => e.activityTaskScheduledEventAttributes?.taskQueue?.name ?? []),
    notPickedUp: events.filter((e) => e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType === TIMEOUT_SCHEDULE_TO_START).length,
  };
}

test("the fixture's stage keeps keyed state", () => {
  assert.ok(keyedOperatorsOf(STAGE).length > 0);
});

test("a keyed stage's next unit goes to the queue of the worker that ran its last one", async () => {
  const ranOn: string[] = [];
  const history = await withOwners("owners-1", "wf-owners-1@worker-a", true, ranOn, async (send, progress) => {
    await send(0, 9);
    await progress((p) => p.processed[TP] === 10);
    await send(10, 19);
    await progress((p) => p.processed[TP] === 20);
    await send(20, 29);
    await progress((p) => p.processed[TP] === 30);
  });
  // The first unit has no owner yet: the shared queue; then the worker it named.
  assert.deepEqual(ranOn, ["wf-owners-1", "wf-owners-1@worker-a", "wf-owners-1@worker-a"]);
  assert.deepEqual(history, { scheduledOn: ranOn, notPickedUp: 0 });
});

test("a unit its owner does not pick up goes to the shared queue after the schedule-to-start timeout", async () => {
  const ranOn: string[] = [];
  const history = await withOwners("owners-2", "wf-owners-2@gone", false, ranOn, async (send, progress) => {
    await send(0, 9);
    await progress((p) => p.processed[TP] === 10);
    await send(10, 19);
    const p = await progress((p) => p.processed[TP] === 20);
    assert.equal(p.counts["last"]?.in, 20, "each unit counted once");
  });
  // The second unit waited on the queue its owner named, nobody took it, and it ran on the shared queue once.
  assert.deepEqual(history, { scheduledOn: ["wf-owners-2", "wf-owners-2@gone", "wf-owners-2"], notPickedUp: 1 });
  assert.deepEqual(ranOn, ["wf-owners-2", "wf-owners-2"]);
});
