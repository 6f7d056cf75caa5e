/**
 * Streaming jobs against the real broker and the real dev server: exactly once end to end, per-key
 * order, poison records, continue-as-new, and a consumer-group rebalance (backpressure, which measures
 * the shim's memory and so runs alone, is in streaming-backpressure.test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SageClient } from "../../client/sage-client.js";
import { definePipeline } from "../../core/api/pipeline.js";
import { KafkaSink, KafkaSource } from "../../core/api/connectors.js";
import { replayExecution } from "../../replay/replay.js";
import { KafkaShim, shimOptionsOf } from "../../streaming/shim.js";
import { StreamJob } from "../../streaming/stream-job.js";
import { taskQueueOf } from "../../client/task-queue.js";
import { encodeBatch } from "../../connectors/kafka/batch-codec.js";
import { STREAM_WORKFLOW, partitionWorkflowId } from "../../core/plan/stream.js";
import { WorkflowNotFoundError } from "@temporalio/client";
import { batchSignal, streamProgressQuery } from "../../workflows/contract.js";
import { createLogger } from "../../client/logger.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { sageCli, startWorker, until } from "../support/harness.js";
import {
  assertExactlyOnceInOrder,
  createTopics,
  EXACTLY_ONCE,
  exactlyOnce,
  prepareStream,
  produceRange,
  readOutput,
  recordOf,
  runStreaming,
  stageRuns,
  startShim,
  STREAM_FIXTURE,
  streamCliEnv,
  streamConfig,
  streamTopics,
  testKafka,
  useStreamTopics,
  waitForRecords,
} from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

test("100k records across 4 partitions and 4 partition workflows: read_committed sees each exactly once, in per-key order", async () => {
  const N = 100_000;
  // Stages as local activities (kafka.local-activities, the default); the formats test runs them as activities.
  const overrides = { "execution.parallelism": 4, "kafka.max-batch-records": 2000 };
  const { topics: t, config, kafka } = await prepareStream("e2e", { partitions: 4, records: N, overrides });
  const run = await runStreaming(pipeline, config, "e2e");
  const { job, shim } = run;
  try {
    assert.equal(job.workflowIds.length, 4);
    const p = await waitForRecords(job, N);
    assert.equal(p.counts["out"]!.out, N);
    assert.equal(p.deadLetters, 0);
    assert.equal(p.workflows.filter((w) => w && w.batches > 0).length, 4, "every partition workflow got batches");
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.records, N);
    const out = await assertExactlyOnceInOrder(t.output, N, kafka);
    assert.ok(out.every((r) => r.double === r.id * 2));
    // Each batch ran as a local activity: markers, no activity tasks.
    const runs = await stageRuns(run.client, job.workflowIds[0]!);
    assert.ok(runs.local > 0 && runs.activities === 0, JSON.stringify(runs));
  } finally {
    await run.close();
  }
});

test("poison records go to the dead-letter topic with the reason in headers; the rest flows", async () => {
  const { topics: t, config, kafka } = await prepareStream("poison", { partitions: 2, overrides: { "execution.parallelism": 2 } });
  const N = 3_000;
  const poison = (id: number) => id % 500 === 7;
  await produceRange(kafka, t.input, 0, N, poison);
  // Values that are not JSON at all: undecodable.
  const producer = await kafka.producer();
  await producer.send(t.input, [
    { key: "bad1", value: "{not json" },
    { key: "bad2", value: Buffer.from([0xff, 0xfe, 0x00]) },
  ]);
  await producer.close();
  const run = await runStreaming(pipeline, config, "poison");
  const { job, shim } = run;
  try {
    const p = await waitForRecords(job, N + 2);
    const poisoned = Array.from({ length: N }, (_, i) => i).filter(poison).length;
    assert.equal(p.deadLetters, poisoned + 2);
    assert.equal(p.counts["out"]!.out, N - poisoned);
    await job.stop();
    await shim.done;
    const out = await readOutput(kafka, t.output);
    assert.equal(exactlyOnce(out, 0, N, poison).missing + exactlyOnce(out, 0, N, poison).duplicated, 0);
    const dead = await kafka.readAll(t.dlq);
    assert.equal(dead.length, poisoned + 2);
    for (const d of dead) {
      assert.ok(d.headers["sage-error"], "reason header");
      assert.match(d.headers["sage-source"] ?? "", new RegExp(`^${t.input.replace(/\./g, "\\.")}\\[\\d\\]@\\d+$`));
    }
    const reasons = dead.map((d) => d.headers["sage-error"]!);
    assert.ok(
      reasons.some((r) => /not valid JSON/.test(r)),
      reasons.join("\n"),
    );
    assert.ok(reasons.some((r) => /poison/.test(r) && d(dead, r) === "double"));
    const raw = dead.find((m) => m.key?.toString() === "bad2");
    assert.deepEqual([...raw!.value!], [0xff, 0xfe, 0x00], "an undecodable record keeps its bytes");
  } finally {
    await run.close();
  }
});

/** The operator a dead letter names. */
function d(dead: Array<{ headers: Record<string, string> }>, reason: string): string | undefined {
  return dead.find((m) => m.headers["sage-error"] === reason)?.headers["sage-operator"];
}

/**
 * 20k records through one partition workflow, one batch at a time, under checkpoint `budgets`: the
 * run continues as new at least twice, each time with the shim's hold; the last run replays
 * deterministically; read_committed sees each record once, in per-key order. Returns the batches.
 */
async function crossCheckpoints(name: string, budgets: Record<string, unknown>): Promise<number> {
  const N = 20_000;
  const overrides = { "execution.parallelism": 1, "kafka.max-unacked-batches": 1, ...budgets };
  const { topics: t, config, kafka } = await prepareStream(name, { partitions: 1, records: N, overrides });
  const run = await runStreaming(pipeline, config, name);
  const { job, shim } = run;
  try {
    const p = await waitForRecords(job, N);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.ok(result.runs >= 3, `continued as new ${result.runs - 1} time(s)`);
    assert.ok(shim.stats.holds >= 2, `the shim held batches for ${shim.stats.holds} checkpoint(s)`);
    // The last run started from a checkpoint (offset table and pending batches as arguments): it replays deterministically.
    const verdict = await replayExecution(run.client.temporal, job.workflowIds[0]!);
    assert.ok(verdict.deterministic, verdict.error);
    assert.equal(result.counts["out"]!.out, N);
    await assertExactlyOnceInOrder(t.output, N, kafka);
    return p.batches;
  } finally {
    await run.close();
  }
}

test("a long run crosses continue-as-new at least twice and loses and duplicates nothing", async () => {
  // Tiny batches one at a time (no merging): ~400 batches of about 5 events each (signal, workflow
  // task, local activity marker). A run's budget is 300 events: the shim holds its batches for each
  // checkpoint (the test server would suggest continue-as-new only at 600 events).
  const batches = await crossCheckpoints("can", { "kafka.max-batch-records": 50, "kafka.events-per-run": 300 });
  assert.ok(batches >= 400);
});

test("a run also checkpoints by history bytes, with the shim's hold; nothing lost or duplicated", async () => {
  // The event budget is out of reach; each run may hold 48 KiB of history. Batches of up to 500
  // records (several KiB gzip'd in their signal) pass that every few batches, long before the test
  // server's own suggestion at 600 events, which would close the run without a hold.
  await crossCheckpoints("canbytes", { "kafka.max-batch-records": 500, "kafka.events-per-run": 100_000, "kafka.history-bytes-per-run": "48kb" });
});

test("with a checkpoint budget and no shim to hold its batches, a run closes by itself at twice the budget; nothing lost or duplicated", async () => {
  // Budget 100 events: the run asks for a hold from 100 on; batches signalled straight from here
  // (no shim) never hold, so it must close at 200. Each batch here costs about 5 events with local
  // activities (10 with regular ones), so 60 batches pass 200; the test server's own suggestion comes
  // only at 600.
  const overrides = { "execution.parallelism": 1, "kafka.events-per-run": 100 };
  const { topics: t, config, kafka } = await prepareStream("nohold", { partitions: 1, overrides });
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const job = StreamJob.create(client, pipeline, { jobId: "nohold" });
  const BATCHES = 60;
  const SIZE = 10;
  try {
    let sawCheckpoint = false;
    for (let b = 0; b < BATCHES; b++) {
      const messages = Array.from({ length: SIZE }, (_, i) => {
        const r = recordOf(b * SIZE + i);
        return { offset: String(r.id), key: Buffer.from(r.key), value: Buffer.from(JSON.stringify(r)), headers: {}, timestamp: String(Date.now()) };
      });
      await client.temporal.workflow.signalWithStart(STREAM_WORKFLOW, {
        workflowId: job.workflowIds[0]!,
        taskQueue: taskQueueOf(pipeline.name, config),
        args: [job.inputs[0]!],
        signal: batchSignal,
        signalArgs: [
          [{ topic: t.input, partition: 0, from: b * SIZE, to: b * SIZE + SIZE - 1, count: SIZE, bytes: 0, cutAt: Date.now() }],
          encodeBatch(messages),
        ],
      });
      // One batch at a time: each costs its own workflow task.
      await until(`batch ${b} through`, async () => ((await job.progress()).counts["out"]?.out ?? 0) >= (b + 1) * SIZE || undefined);
      const p = await job.handle(0).query(streamProgressQuery);
      sawCheckpoint ||= p.checkpoint === true;
    }
    await job.stop();
    const result = await job.result();
    assert.ok(sawCheckpoint, "the run never asked for a checkpoint hold");
    assert.ok(result.runs >= 2, `continued as new ${result.runs - 1} time(s)`);
    assert.equal(result.counts["out"]!.out, BATCHES * SIZE);
    const out = await readOutput(kafka, t.output);
    assert.deepEqual(exactlyOnce(out, 0, BATCHES * SIZE), EXACTLY_ONCE);
  } finally {
    await client.close();
    await worker.stop();
  }
});

test("rebalance: a second shim joins the group and later leaves; nothing is lost or duplicated", async () => {
  const N = 40_000;
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 200 };
  const { topics: t, config, kafka } = await prepareStream("rebalance", { partitions: 4, records: N / 2, overrides });
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const { job, shim } = await startShim(client, pipeline, config, "rebalance");
  const second = new KafkaShim(job, createKafkajsClient({ brokers: [config.kafka.brokers] }), shimOptionsOf(config), createLogger("warn"));
  try {
    await until("some progress", async () => ((await job.progress()).records > 2_000 ? true : undefined));
    await second.start();
    await produceRange(kafka, t.input, N / 2, N);
    await until("the second shim to deliver", async () => (second.stats.batches > 0 ? true : undefined), 120_000);
    await second.stop();
    await waitForRecords(job, N);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N);
    assert.ok(shim.stats.batches > 0 && second.stats.batches > 0, "both shims delivered");
    await assertExactlyOnceInOrder(t.output, N, kafka);
  } finally {
    await second.stop();
    await shim.stop();
    await client.close();
    await worker.stop();
  }
});

test("string and bytes formats; keys, headers and timestamps pass through to the sink", async () => {
  const kafka = testKafka();
  const t = streamTopics("formats");
  // Stages as regular activities here (not the default), so that path stays tested too.
  const config = streamConfig("formats", t.dlq, { "execution.parallelism": 1, "kafka.local-activities": false });
  await createTopics(kafka, t, 1);
  const bytesIn = `${t.input}.bytes`;
  const bytesOut = `${t.output}.bytes`;
  const admin = await kafka.admin();
  await admin.ensureTopic(bytesIn, 1);
  await admin.ensureTopic(bytesOut, 1);
  await admin.close();
  const strings = definePipeline("formats-string", (env) =>
    env
      .fromSource(KafkaSource.records<string>(t.input, { groupId: `${t.group}.s`, format: "string" }), { name: "in" })
      .map((r) => `${r.value.toUpperCase()}@${r.partition}:${r.offset}:${r.key ?? "-"}`, { name: "upper" })
      .sink(KafkaSink.topic<string>(t.output, { format: "string" }), { name: "out" }),
  );
  const bytes = definePipeline("formats-bytes", (env) =>
    env
      .fromSource(KafkaSource.topic<Buffer>(bytesIn, { groupId: `${t.group}.b`, format: "bytes" }), { name: "in" })
      .map((b) => Buffer.from([...b].reverse()), { name: "reverse" })
      .sink(KafkaSink.topic<Buffer>(bytesOut, { format: "bytes" }), { name: "out" }),
  );
  const producer = await kafka.producer();
  await producer.send(t.input, [
    { key: "a", value: "hello", headers: { trace: "t-1" }, timestamp: "1700000000000" },
    { key: null, value: "world", headers: { trace: "t-2" }, timestamp: "1700000000001" },
  ]);
  await producer.send(bytesIn, [{ key: "raw", value: Buffer.from([1, 2, 250, 0]), headers: { kind: "bin" }, timestamp: "1700000000002" }]);
  await producer.close();
  for (const [pipeline, expected] of [
    [strings, 2],
    [bytes, 1],
  ] as const) {
    const run = await runStreaming(pipeline, config, "formats");
    try {
      await waitForRecords(run.job, expected);
      await run.finish();
      const runs = await stageRuns(run.client, run.job.workflowIds[0]!);
      assert.ok(runs.activities > 0 && runs.local === 0, JSON.stringify(runs));
    } finally {
      await run.close();
    }
  }
  const out = await kafka.readAll(t.output);
  assert.deepEqual(
    out.map((m) => [m.key?.toString() ?? null, m.value!.toString(), m.headers["trace"], m.timestamp]),
    [
      ["a", "HELLO@0:0:a", "t-1", "1700000000000"],
      [null, "WORLD@0:1:-", "t-2", "1700000000001"],
    ],
  );
  const raw = await kafka.readAll(bytesOut);
  assert.deepEqual(
    raw.map((m) => [m.key?.toString(), [...m.value!], m.headers["kind"], m.timestamp]),
    [["raw", [0, 250, 2, 1], "bin", "1700000000002"]],
  );
});

test("a missing sink or source topic stops the shim before anything starts, naming topic and operator; kafka.create-topics creates them", async () => {
  const t = streamTopics("missing");
  useStreamTopics(t);
  const config = streamConfig("missing", t.dlq, { "execution.parallelism": 2 });
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(t.input, 2);
  } finally {
    await admin.close();
  }
  // The sink topic is missing: `sage shim` refuses with exit code 2, and no partition workflow exists.
  const refused = sageCli(["shim", STREAM_FIXTURE, "--job-id", "missing-sink"], { env: streamCliEnv(config, t) });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, new RegExp(`Kafka topic "${t.output}" \\(sink "out" of pipeline "streamtest"\\) does not exist`));
  const client = await SageClient.connect({ config });
  try {
    await assert.rejects(client.temporal.workflow.getHandle(partitionWorkflowId("streamtest", "missing-sink", 0)).describe(), WorkflowNotFoundError);
  } finally {
    await client.close();
  }

  // Neither topic exists: with kafka.create-topics the shim creates both, one partition per partition workflow, and the job runs.
  const t2 = streamTopics("created");
  useStreamTopics(t2);
  const run = await runStreaming(pipeline, streamConfig("created", t2.dlq, { "execution.parallelism": 2, "kafka.create-topics": true }), "created");
  try {
    const check = await kafka.admin();
    try {
      assert.deepEqual(await check.missingTopics([t2.input, t2.output]), []);
      assert.equal((await check.partitionOffsets(t2.output)).length, 2);
    } finally {
      await check.close();
    }
    await produceRange(kafka, t2.input, 0, 1_000);
    await waitForRecords(run.job, 1_000);
    await run.finish();
    const out = exactlyOnce(await readOutput(kafka, t2.output), 0, 1_000);
    assert.equal(out.missing + out.duplicated, 0, JSON.stringify(out));
  } finally {
    await run.close();
  }
});
