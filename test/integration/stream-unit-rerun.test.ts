/**
 * A streaming unit that runs again after an earlier attempt committed it (a local activity whose
 * workflow task was lost): the stage runner is called directly on the real broker, first over slice
 * A, then again, over A alone or with B merged in, under the same transactional id.
 * - Keyed state: A's records must not reach the state a second time; each key's rolling sum counts
 *   every input record once, and the counts of A come from the note its first run committed with
 *   its markers.
 * - Stateless: the run again reports the counts of every record of its unit (the workflow never got
 *   the first attempt's), while each output and dead letter is written once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { definePipeline, Duration, KafkaSink, KafkaSource, WatermarkStrategy } from "sage-temporal";
import { OperatorRegistry } from "../../activities/registry.js";
import { KeyedStateHost } from "../../activities/stage/keyed-state.js";
import { runStage, type StageHost } from "../../activities/stage/run-stage.js";
import { encodeBatch } from "../../connectors/kafka/batch-codec.js";
import type { ConsumedMessage } from "../../connectors/kafka/client.js";
import { KafkaSinkHost } from "../../connectors/kafka/sink.js";
import type { JobRuntimeOptions, StageInput, StreamSlice } from "../../core/plan/job.js";
import { changelogTopicOf, keyedOperatorsOf } from "../../core/plan/stream.js";
import { LINEAGE_HEADER, lineageTopicOf, parseLineage } from "../../core/plan/lineage.js";
import { createTopics, streamConfig, streamTopics, testKafka } from "../support/kafka.js";

/** One input record: key `k`, value `v`, and an event time `T0 + t` where a test gives one. */
interface Add {
  k: string;
  v: number;
  t?: number;
}

/** Event time of the first record where a test has them. */
const T0 = 1_700_000_000_000;

/** The runtime options a client on `config` starts jobs with (`SageClient.runtimeOptions`). */
function runtimeOf(config: ReturnType<typeof streamConfig>): JobRuntimeOptions {
  return {
    activityTimeoutMs: config.temporal["activity-timeout"],
    heartbeatTimeoutMs: config.temporal["heartbeat-timeout"],
    maxBatchBytes: config.execution["max-batch-bytes"],
    splitBytes: config.execution["split-bytes"],
    splitPrefetch: config.execution["split-prefetch"],
    localActivities: config.kafka["local-activities"],
    eventsPerRun: config.kafka["events-per-run"],
    historyBytesPerRun: config.kafka["history-bytes-per-run"],
    checkpointIntervalMs: config.state["checkpoint-interval"],
    deadLetterPath: config["dead-letter"].path ?? null,
  };
}

/** A stage host on the real broker that runs units of `stageId` directly, as a worker's activity would. */
function stageRunner(
  registry: OperatorRegistry,
  plan: { pipeline: string; hash: string; parallelism: number; fusion: boolean },
  stageId: string,
  jobId: string,
  config: ReturnType<typeof streamConfig>,
  kafka: ReturnType<typeof testKafka>,
  logger: Logger,
  dlq: string,
  lineageTopic?: string,
) {
  const dataDir = mkdtempSync(join(tmpdir(), "sage-unit-rerun-"));
  const sinkHost = new KafkaSinkHost(kafka, logger);
  const stateHost = new KeyedStateHost(() => sinkHost, logger);
  const host: StageHost = {
    registry,
    dataDir,
    logger,
    heartbeat: () => {},
    cancelled: () => false,
    kafka: () => sinkHost,
    keyedState: () => stateHost,
  };
  const context = {
    jobId,
    pipeline: plan.pipeline,
    planHash: plan.hash,
    parallelism: plan.parallelism,
    fusion: plan.fusion,
    params: {},
    runtime: runtimeOf(config),
  };
  const unit = (slices: StreamSlice[]): StageInput => ({
    ...context,
    stage: stageId,
    shard: "p0",
    stream: { slices, workflowIndex: 0, deadLetterTopic: dlq, ...(lineageTopic ? { lineageTopic } : {}) },
  });
  return {
    host,
    unit,
    close: async (): Promise<void> => {
      await sinkHost.close();
      await stateHost.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Produces values 0..19 (`{ k: "k<v>", v }`, key `k<v>`) to partition 0 of `topic` and reads them
 * back in offset order: all of them, the first ten (`a`) and the last ten (`b`).
 */
async function produceValues(kafka: ReturnType<typeof testKafka>, topic: string) {
  const producer = await kafka.producer();
  try {
    await producer.send(
      topic,
      Array.from({ length: 20 }, (_, v) => ({ key: `k${v}`, value: JSON.stringify({ k: `k${v}`, v }), partition: 0 })),
    );
  } finally {
    await producer.close();
  }
  const input = (await kafka.readToEnd(topic)).sort((x, y) => Number(x.offset) - Number(y.offset));
  assert.equal(input.length, 20);
  return { input, a: input.slice(0, 10), b: input.slice(10) };
}

/** The slice of `messages` (consecutive offsets of partition 0 of `topic`) as the workflow hands it out. */
function sliceOf(topic: string, messages: ConsumedMessage[], seq: number): StreamSlice {
  return {
    topic,
    partition: 0,
    from: Number(messages[0]!.offset),
    to: Number(messages[messages.length - 1]!.offset),
    skipBelow: Number(messages[0]!.offset),
    seq,
  };
}

test("a unit run again with a later batch merged in counts the records its first run committed once, in state and output", async () => {
  const topics = streamTopics("unit-rerun");
  const config = streamConfig("unit-rerun", topics.dlq);
  const pipeline = definePipeline("unitrerun", (env) => {
    env
      .fromSource(KafkaSource.topic<Add>(topics.input, { groupId: topics.group }), { name: "in" })
      // Event time: a record's is its position in the input, so a unit's largest is its last record's.
      .assignTimestampsAndWatermarks(
        WatermarkStrategy.forBoundedOutOfOrderness<Add>(Duration.ofMillis(0)).withTimestampAssigner((e) => T0 + (e.t ?? 0)),
        { name: "timestamps" },
      )
      .keyBy((e) => e.k, { name: "by-k", sourcePartitioned: true })
      .reduce((a, b) => ({ k: a.k, v: a.v + b.v }), { name: "sum" })
      .sink(KafkaSink.topic<Add>(topics.output), { name: "out" });
  });
  const logger = pino({ level: process.env.SAGE_TEST_LOG ?? "silent" });
  const registry = new OperatorRegistry(pipeline, logger);
  const { plan } = registry.compile(1, config.execution.fusion);
  const stage = plan.stages.find((s) => s.source)!;
  const uids = keyedOperatorsOf(stage);
  assert.equal(uids.length, 1, "the rolling sum runs in the source's stage");
  const jobId = `rerun-${process.pid}-${Date.now()}`;
  const changelog = changelogTopicOf(plan.pipeline, jobId, uids[0]!);

  const kafka = testKafka();
  await createTopics(kafka, topics, 1);
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(changelog, 1, { "cleanup.policy": "compact" });
  } finally {
    await admin.close();
  }
  // 20 records, keys a and b alternating, value 1 each: each key's sum is 10.
  const producer = await kafka.producer();
  try {
    const adds = Array.from({ length: 20 }, (_, i): Add => ({ k: i % 2 === 0 ? "a" : "b", v: 1, t: i }));
    await producer.send(
      topics.input,
      adds.map((e) => ({ key: e.k, value: JSON.stringify(e), partition: 0 })),
    );
  } finally {
    await producer.close();
  }
  const input = (await kafka.readAll(topics.input)).sort((x, y) => Number(x.offset) - Number(y.offset));
  assert.equal(input.length, 20);
  const offsets = input.map((m) => Number(m.offset));
  const a = input.slice(0, 10);
  const b = input.slice(10);
  assert.deepEqual(
    offsets,
    Array.from({ length: 20 }, (_, i) => offsets[0]! + i),
    "offsets without gaps",
  );

  const { host, unit, close } = stageRunner(registry, plan, stage.id, jobId, config, kafka, logger, topics.dlq);
  try {
    // The first run of the unit commits A.
    const first = await runStage(unit([sliceOf(topics.input, a, 1)]), host, logger, [encodeBatch(a)]);
    assert.equal(first.states?.[uids[0]!]?.entries, 2, "two keys in state after A");
    // Its workflow task was lost: the unit runs again, first alone, in the same worker (its sink knows
    // the marker and the note it committed), then with B merged in, in a new worker (it reads both
    // back from the broker). Each reports the counts of its whole unit: A's come from the note.
    const again = await runStage(unit([sliceOf(topics.input, a, 1)]), host, logger, [encodeBatch(a)]);
    assert.deepEqual(again.counts, first.counts, "the same unit run again reports the same counts");
    // And the same event time: the workflow never got the first run's, and a watermark that misses
    // it holds every window back for good.
    assert.ok(first.eventTime && Object.keys(first.eventTime).length > 0, `the first run's event time: ${JSON.stringify(first.eventTime)}`);
    assert.deepEqual(again.eventTime, first.eventTime, "the same unit run again reports the same event time");
    const fresh = stageRunner(registry, plan, stage.id, jobId, config, kafka, logger, topics.dlq);
    let merged: Awaited<ReturnType<typeof runStage>>;
    try {
      merged = await runStage(unit([sliceOf(topics.input, a, 1), sliceOf(topics.input, b, 2)]), fresh.host, logger, [encodeBatch(a), encodeBatch(b)]);
    } finally {
      await fresh.close();
    }
    const counted = (op: string): number => merged.counts[op]?.in ?? 0;
    assert.equal(merged.eventTime?.[`${topics.input}:0`], T0 + 19, `B's last record is the latest: ${JSON.stringify(merged.eventTime)}`);
    assert.deepEqual(["in", "sum", "out"].map(counted), [20, 20, 20], JSON.stringify(merged.counts));

    const out = (await kafka.readAll(topics.output)).map((m) => JSON.parse(m.value!.toString("utf8")) as Add);
    const sums = (k: string): number[] => out.filter((e) => e.k === k).map((e) => e.v);
    // Every input record once: the rolling sums 1..10 per key, each written once, and nothing dead-lettered.
    const once = Array.from({ length: 10 }, (_, i) => i + 1);
    assert.deepEqual(sums("a"), once, `key a's rolling sums: ${JSON.stringify(sums("a"))}`);
    assert.deepEqual(sums("b"), once, `key b's rolling sums: ${JSON.stringify(sums("b"))}`);
    assert.equal((await kafka.readAll(topics.dlq)).length, 0);
    // The state the changelog holds: the last committed value of each key.
    const last = new Map<string, string>();
    for (const m of await kafka.readAll(changelog)) if (m.key) last.set(m.key.toString("utf8"), m.value?.toString("utf8") ?? "");
    assert.equal(last.size, 2, `changelog keys: ${[...last.keys()].join(", ")}`);
    for (const [key, value] of last) assert.match(value, /"v":10\b/, `changelog ${key}: ${value}`);
  } finally {
    await close();
  }
});

test("a stateless unit run again, alone or with a later batch merged in, reports every record's counts and writes each output once", async () => {
  const topics = streamTopics("unit-recount");
  const config = streamConfig("unit-recount", topics.dlq);
  // Odd values are filtered out; 13 fails the map (a dead letter); the rest go out doubled.
  const pipeline = definePipeline("unitrecount", (env) => {
    env
      .fromSource(KafkaSource.topic<Add>(topics.input, { groupId: topics.group }), { name: "in" })
      .filter((e) => e.v % 2 === 0 || e.v === 13, { name: "even" })
      .map(
        (e) => {
          if (e.v === 13) throw new Error("thirteen");
          return { k: e.k, v: e.v * 2 };
        },
        { name: "double" },
      )
      .sink(KafkaSink.topic<Add>(topics.output), { name: "out" });
  });
  const logger = pino({ level: process.env.SAGE_TEST_LOG ?? "silent" });
  const registry = new OperatorRegistry(pipeline, logger);
  const { plan } = registry.compile(1, config.execution.fusion);
  const stage = plan.stages.find((s) => s.source)!;
  assert.equal(keyedOperatorsOf(stage).length, 0, "a stateless stage");
  const jobId = `recount-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  await createTopics(kafka, topics, 1);
  // Values 0..19: A is 0..9 (evens 0,2,4,6,8), B is 10..19 (evens 10..18, and 13 dead).
  const { a, b } = await produceValues(kafka, topics.input);
  const { host, unit, close } = stageRunner(registry, plan, stage.id, jobId, config, kafka, logger, topics.dlq);
  try {
    const first = await runStage(unit([sliceOf(topics.input, a, 1)]), host, logger, [encodeBatch(a)]);
    assert.deepEqual(first.counts["in"], { in: 10, out: 10, dead: 0 });
    assert.deepEqual(first.counts["out"], { in: 5, out: 5, dead: 0 });
    // Its workflow task was lost: the same unit runs again and must report what the first did.
    const again = await runStage(unit([sliceOf(topics.input, a, 1)]), host, logger, [encodeBatch(a)]);
    assert.deepEqual(again.counts, first.counts, "the same unit run again reports the same counts");
    // Lost again: now with B merged in. Its counts are A's and B's.
    const merged = await runStage(unit([sliceOf(topics.input, a, 1), sliceOf(topics.input, b, 2)]), host, logger, [encodeBatch(a), encodeBatch(b)]);
    assert.deepEqual(merged.counts["in"], { in: 20, out: 20, dead: 0 });
    assert.deepEqual(merged.counts["double"], { in: 11, out: 10, dead: 1 });
    assert.deepEqual(merged.counts["out"], { in: 10, out: 10, dead: 0 });

    // Each output and the dead letter once, in spite of three runs over A.
    const out = (await kafka.readToEnd(topics.output)).map((m) => (JSON.parse(m.value!.toString("utf8")) as Add).v).sort((x, y) => x - y);
    assert.deepEqual(
      out,
      [0, 2, 4, 6, 8, 10, 12, 14, 16, 18].map((v) => v * 2),
    );
    const dead = await kafka.readToEnd(topics.dlq);
    assert.equal(dead.length, 1, `dead letters: ${dead.map((m) => m.value?.toString("utf8")).join(" | ")}`);
  } finally {
    await close();
  }
});

test("a mapBatch in a stateless unit run again: each result goes out once, with its own record's key and lineage", async () => {
  const topics = streamTopics("unit-recount-batch");
  const config = streamConfig("unit-recount-batch", topics.dlq);
  // Batches of 4 straddle what the first run committed (values 0..9) and what is new (10..19):
  // each result must be written or dropped as its own record's, not as the record that filled the batch.
  const pipeline = definePipeline("unitrecountbatch", (env) => {
    env
      .fromSource(KafkaSource.topic<Add>(topics.input, { groupId: topics.group }), { name: "in" })
      .mapBatch(
        (es: Add[]) => {
          if (es.some((e) => e.v === 13)) throw new Error("thirteen");
          return es.map((e) => ({ k: e.k, v: e.v * 2 }));
        },
        { name: "double", batchSize: 4 },
      )
      .sink(KafkaSink.topic<Add>(topics.output), { name: "out" });
  });
  const logger = pino({ level: process.env.SAGE_TEST_LOG ?? "silent" });
  const registry = new OperatorRegistry(pipeline, logger);
  const { plan } = registry.compile(1, config.execution.fusion);
  const stage = plan.stages.find((s) => s.source)!;
  const jobId = `recount-batch-${process.pid}-${Date.now()}`;
  const kafka = testKafka();
  await createTopics(kafka, topics, 1);
  const { input, a, b } = await produceValues(kafka, topics.input);
  const lineageTopic = lineageTopicOf(plan.pipeline, jobId);
  const { host, unit, close } = stageRunner(registry, plan, stage.id, jobId, config, kafka, logger, topics.dlq, lineageTopic);
  try {
    const first = await runStage(unit([sliceOf(topics.input, a, 1)]), host, logger, [encodeBatch(a)]);
    // Its workflow task was lost: the unit runs again with B merged in.
    const merged = await runStage(unit([sliceOf(topics.input, a, 1), sliceOf(topics.input, b, 2)]), host, logger, [encodeBatch(a), encodeBatch(b)]);
    assert.deepEqual(first.counts["double"], { in: 10, out: 10, dead: 0 });
    assert.deepEqual(merged.counts["double"], { in: 20, out: 19, dead: 1 });

    const offsetOf = new Map(input.map((m) => [(JSON.parse(m.value!.toString("utf8")) as Add).v, Number(m.offset)]));
    const out = await kafka.readToEnd(topics.output);
    const values = out.map((m) => (JSON.parse(m.value!.toString("utf8")) as Add).v / 2).sort((x, y) => x - y);
    assert.deepEqual(
      values,
      Array.from({ length: 20 }, (_, v) => v).filter((v) => v !== 13),
      "each result once: none of the committed records' again, none of the new ones dropped",
    );
    for (const m of out) {
      const v = (JSON.parse(m.value!.toString("utf8")) as Add).v / 2;
      assert.equal(m.key?.toString("utf8"), `k${v}`, `the output of ${v} carries its own record's key`);
      const lineage = parseLineage(String(m.headers[LINEAGE_HEADER] ?? ""));
      assert.equal(lineage?.source, `${topics.input}[0]@${offsetOf.get(v)}`, `the output of ${v} names its own source record`);
    }
    const dead = await kafka.readToEnd(topics.dlq);
    assert.deepEqual(
      dead.map((m) => m.key?.toString("utf8")),
      ["k13"],
      "the record that fails alone is the one dead letter, under its own key",
    );
  } finally {
    await close();
  }
});
