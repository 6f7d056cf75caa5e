/**
 * Keyed stages as regular activities (`kafka.local-activities: false`) on two `sage worker`
 * processes, against the real dev server and broker: with `worker.own-queue` (the default) each
 * keyed unit goes back to the worker that ran the stage's last unit, so a worker rebuilds a
 * partition's state only after a unit its owner did not pick up in time went elsewhere; without it,
 * units land on either worker and the state moves. Both give windows equal to the reference
 * read_committed. Each test reports its rebuilds and where the keyed units ran.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import proto from "@temporalio/proto";
import keyedPipeline, { BRANCHES, type Ev } from "../fixtures/keyed-pipeline.js";
import { assertBranches, keyedInput, keyedReference, readBranches } from "../support/keyed-reference.js";
import { REPO, startWorkerProcess, until, type WorkerProcess } from "../support/harness.js";
import { startShim, streamCliEnv, streamConfig, testKafka } from "../support/kafka.js";
import { SageClient } from "../../client/sage-client.js";
import { keyedOperatorsOf, partitionWorkflowId } from "../../core/plan/stream.js";
import { stageActivityType } from "../../core/plan/job.js";

const KEYED_FIXTURE = join(REPO, "test", "fixtures", "keyed-pipeline.ts");
const SCHEDULE_TO_START = proto.temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START;

/** Keyed stage activities of every run of `workflowId`: the queues they were scheduled on, and how many nobody picked up in time. */
async function keyedUnits(client: SageClient, workflowId: string, keyedTypes: Set<string>) {
  const queues: string[] = [];
  let notPickedUp = 0;
  for await (const run of client.temporal.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    const events = (await client.temporal.workflow.getHandle(workflowId, run.runId).fetchHistory()).events ?? [];
    for (const e of events) {
      const scheduled = e.activityTaskScheduledEventAttributes;
      if (scheduled && keyedTypes.has(scheduled.activityType?.name ?? "")) queues.push(scheduled.taskQueue?.name ?? "");
      if (e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType === SCHEDULE_TO_START) notPickedUp++;
    }
  }
  return { queues, notPickedUp };
}

/** Runs the keyed fixture over 1,500 records on two worker processes; checks the windows; returns rebuilds and where keyed units ran. */
async function twoWorkers(tc: TestContext, label: string, ownQueue: boolean) {
  const input = keyedInput(1_500, 53);
  const expected = keyedReference(input);
  const tag = `${label}-${process.pid}-${Date.now()}`;
  const t = { input: `${tag}.in`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    // The test's event time is in the past: no time-based retention may delete it.
    for (const topic of [t.input, ...BRANCHES.map((b) => `${t.out}.${b}`)]) await admin.ensureTopic(topic, 1, { "retention.ms": "-1" });
    await admin.ensureTopic(t.dlq, 1);
  } finally {
    await admin.close();
  }
  const env = { KEYED_IN: t.input, KEYED_OUT: t.out, SAGE_KAFKA_LOCAL_ACTIVITIES: "false", SAGE_WORKER_OWN_QUEUE: String(ownQueue) };
  Object.assign(process.env, { KEYED_IN: t.input, KEYED_OUT: t.out });
  const config = streamConfig(label, t.dlq, {
    "execution.parallelism": 2,
    "kafka.max-batch-records": 50,
    "kafka.local-activities": false,
    "log.level": "info",
  });
  const client = await SageClient.connect({ config });
  const cli = streamCliEnv(config, { env });
  const workers: WorkerProcess[] = [];
  const { job, shim } = await startShim(client, keyedPipeline, config, tag);
  try {
    workers.push(await startWorkerProcess(KEYED_FIXTURE, config, client, cli));
    workers.push(await startWorkerProcess(KEYED_FIXTURE, config, client, cli));
    const producer = await kafka.producer();
    await producer.send(
      t.input,
      input.map((e: Ev) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts) })),
    );
    await producer.close();
    const read = async (branch: string): Promise<unknown[]> =>
      (await kafka.readAll(`${t.out}.${branch}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    await readBranches(read, expected, until);
    // A little longer: a window emitted twice would show.
    await new Promise((r) => setTimeout(r, 2_000));
    assertBranches(Object.fromEntries(await Promise.all(BRANCHES.map(async (b) => [b, await read(b)] as const))), expected, BRANCHES);
    const plan = job.inputs[0]!.plan;
    const keyedTypes = new Set(plan.stages.filter((s) => keyedOperatorsOf(s).length > 0).map((s) => stageActivityType(s.name)));
    const units = await Promise.all([0, 1].map((i) => keyedUnits(client, partitionWorkflowId(plan.pipeline, tag, i), keyedTypes)));
    const queues = units.flatMap((u) => u.queues);
    const shared = config.temporal["task-queue"]!;
    const progress = await job.progress();
    const result = {
      restores: progress.workflows.reduce((n, w) => n + (w?.restores ?? 0), 0),
      keyedUnits: queues.length,
      onOwnQueues: queues.filter((q) => q !== shared).length,
      notPickedUp: units.reduce((n, u) => n + u.notPickedUp, 0),
    };
    tc.diagnostic(`worker.own-queue ${ownQueue}: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await shim.stop();
    for (const w of workers) await w.stop();
    await client.close();
  }
}

test("with worker.own-queue, keyed units go back to the worker holding their state: rebuilds only after a unit went elsewhere", async (tc) => {
  const r = await twoWorkers(tc, "kownq", true);
  assert.ok(r.onOwnQueues > 0, "keyed units were scheduled on the workers' own queues");
  // A unit goes to the shared queue only as a stage's first or after its owner did not take it in time;
  // every rebuild needs one such unit after the first.
  assert.ok(r.restores <= r.notPickedUp, `${r.restores} rebuilds, ${r.notPickedUp} units their owner did not pick up`);
});

test("without worker.own-queue, keyed units run on either worker and the windows are the same", async (tc) => {
  const r = await twoWorkers(tc, "kshared", false);
  assert.equal(r.onOwnQueues, 0, "no worker polls a queue of its own");
});
