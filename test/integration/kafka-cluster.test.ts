/**
 * The Kafka to Kafka exactly-once job on a cluster of three KRaft brokers of this file's own
 * (replication factor 3, min.insync.replicas 2, internal topics too): kill -9 of the broker that
 * leads the most of the job's partitions mid-run, so that leaders, and maybe the group and
 * transaction coordinators, move; its restart while the job runs on. Read back with read_committed:
 * 0 lost, 0 duplicated. Prints how long the job's output stalled after the kill and the restart,
 * from the times the brokers appended the output records (the topic's LogAppendTime).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import kafkajs, { Kafka, logLevel } from "kafkajs";
import { freePort } from "../../dev/temporal-server.js";
import { startCluster, type Cluster } from "../../dev/kafka-broker.js";
import { kafkaClientOf } from "../../connectors/kafka/index.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { scratchDir, until } from "../support/harness.js";
import {
  createTopics,
  EXACTLY_ONCE,
  exactlyOnce,
  keysOutOfOrder,
  recordOf,
  runStreaming,
  streamConfig,
  streamTopics,
  useStreamTopics,
  waitForRecords,
} from "../support/kafka.js";
import type { StreamRecord } from "../fixtures/stream-pipeline.js";
import pipeline from "../fixtures/stream-pipeline.js";

const N = Number(process.env.KAFKA_CLUSTER_RECORDS ?? 200_000);

let cluster: Cluster;

before(async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const controllerPorts = [await freePort(), await freePort(), await freePort()];
  const start = Date.now();
  cluster = startCluster({ ports, controllerPorts, dataDir: join(scratchDir("kafka-cluster"), "kafka"), heapMb: 256 });
  console.log(`cluster: three brokers ready in ${((Date.now() - start) / 1000).toFixed(1)} s`);
});

after(() => cluster?.stop());

type Admin = ReturnType<Kafka["admin"]>;

/** Partition leaders (node ids), replica and in-sync replica counts of `topics`, from the cluster's metadata. */
async function layout(admin: Admin, topics: string[]) {
  const { topics: meta } = await admin.fetchTopicMetadata({ topics });
  return meta.flatMap((t) =>
    t.partitions.map((p) => ({ topic: t.name, partition: p.partitionId, leader: p.leader, replicas: p.replicas.length, isr: p.isr.length })),
  );
}

/**
 * Records `0..n-1` of the test stream (as `produceRange` writes them), each key to one partition,
 * the partitions written side by side: a replicated write waits for two brokers, one at a time
 * would take most of this file's time.
 */
async function producePartitions(kafka: KafkaClient, topic: string, n: number, partitions: number): Promise<void> {
  const producer = await kafka.producer();
  try {
    const write = async (partition: number): Promise<void> => {
      for (let start = 0; start < n; start += 5_000) {
        const batch = [];
        for (let id = start; id < Math.min(n, start + 5_000); id++) {
          const r = recordOf(id);
          if (Number(r.key.slice(1)) % partitions === partition) batch.push({ key: r.key, value: JSON.stringify(r), partition });
        }
        await producer.send(topic, batch);
      }
    };
    await Promise.all(Array.from({ length: partitions }, (_, p) => write(p)));
  } finally {
    await producer.close();
  }
}

/**
 * Polls the output's last stable offsets (summed over partitions) every 100 ms: how far committed
 * (or aborted) transactions reached, to time the kill and the restart. A poll that fails while a
 * leader is dead is skipped.
 */
function watchOutput(admin: Admin, topic: string) {
  let current = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const offsets = await admin.fetchTopicOffsets(topic).catch(() => null);
      if (offsets) current = offsets.reduce((n, o) => n + Number(o.offset), 0);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    current: () => current,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** The longest time in `[from, to]` in which no output record was appended, and where it began, from the sorted append times. */
function longestGap(times: readonly number[], from: number, to: number): { ms: number; startMs: number } {
  let last = from;
  let gap = { ms: 0, startMs: 0 };
  for (const t of times) {
    if (t <= from) continue;
    const at = Math.min(t, to);
    if (at - last > gap.ms) gap = { ms: at - last, startMs: last - from };
    if (t >= to) break;
    last = t;
  }
  if (to - last > gap.ms) gap = { ms: to - last, startMs: last - from };
  return gap;
}

test("three brokers: kill -9 of the one leading most partitions mid-run, and its restart: 0 lost, 0 duplicated", async () => {
  const testStart = Date.now();
  const t = streamTopics("cluster");
  useStreamTopics(t);
  const config = streamConfig("cluster", t.dlq, {
    "kafka.brokers": cluster.brokers,
    "kafka.replication-factor": 3,
    "execution.parallelism": 2,
    "kafka.max-batch-records": 2_000,
  });
  const kafka = kafkaClientOf(config);
  // The broker stamps each output record when it appends it: the stall figures come from those times.
  const admin = await kafka.admin();
  await admin.ensureTopic(t.output, 4, { "message.timestamp.type": "LogAppendTime" });
  await admin.close();
  await createTopics(kafka, t, 4);
  const inspect = new Kafka({ clientId: "cluster-test", brokers: cluster.brokers.split(","), logLevel: logLevel.NOTHING }).admin();
  await inspect.connect();
  try {
    // The job's topics (from kafka.replication-factor) and the internal ones have three replicas each.
    for (const p of await layout(inspect, [t.input, t.output, t.dlq])) assert.equal(p.replicas, 3, `${p.topic}:${p.partition}`);
    const minIsr = await inspect.describeConfigs({
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: t.output, configNames: ["min.insync.replicas"] }],
      includeSynonyms: false,
    });
    assert.equal(minIsr.resources[0]!.configEntries[0]!.configValue, "2");
    const produced = Date.now();
    await producePartitions(kafka, t.input, N, 4);
    const producedMs = Date.now() - produced;
    for (const p of await layout(inspect, ["__transaction_state", "__consumer_offsets"])) assert.equal(p.replicas, 3, `${p.topic}:${p.partition}`);

    const started = Date.now();
    const run = await runStreaming(pipeline, config, "cluster");
    const output = watchOutput(inspect, t.output);
    try {
      await until("a fifth of the records through", async () => (output.current() >= N * 0.2 ? true : undefined), 240_000);
      // The victim: the broker leading most of the job's partitions now (the lowest id on a tie).
      const before = await layout(inspect, [t.input, t.output]);
      const counts = new Map<number, number>();
      for (const p of before) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
      const [victimId, led] = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]!;
      const victim = cluster.nodes[victimId - 1]!;
      const killedAt = Date.now();
      victim.kill();
      const movedAfter = await until(
        "the killed broker's partitions to have new leaders",
        async () => ((await layout(inspect, [t.input, t.output])).every((p) => p.leader !== victimId) ? Date.now() - killedAt : undefined),
        60_000,
      );
      // The job goes on with two brokers (min.insync.replicas 2 still met) before the restart.
      const atMove = output.current();
      await until("output to go on without the killed broker", async () => (output.current() >= atMove + N * 0.05 ? true : undefined), 240_000);
      const restartedAt = Date.now();
      const atRestart = output.current();
      await victim.relaunch();
      const backAfter = Date.now() - restartedAt;
      await waitForRecords(run.job, N);
      const finishedAt = Date.now();
      await until(
        "the restarted broker back in every ISR",
        async () => ((await layout(inspect, [t.input, t.output])).every((p) => p.isr === 3) ? true : undefined),
        120_000,
      );
      const result = await run.finish();
      assert.equal(result.counts["out"]!.out, N, "each record counted once in the workflows");
      const readAt = Date.now();
      const messages = await kafka.readAll(t.output);
      const out = messages.map((m) => JSON.parse(m.value!.toString("utf8")) as StreamRecord);
      assert.deepEqual(exactlyOnce(out, 0, N), EXACTLY_ONCE);
      assert.deepEqual(keysOutOfOrder(out), []);
      const sent = messages.map((m) => Number(m.timestamp)).sort((a, b) => a - b);
      // Up to the last record appended at most: after it, the job had nothing left to write.
      const end = sent[sent.length - 1]!;
      const kill = longestGap(sent, killedAt, Math.min(restartedAt, end));
      const restart = longestGap(sent, restartedAt, Math.min(finishedAt, end));
      const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
      console.log(
        `cluster: ${N} records produced in ${s(producedMs)}; broker ${victimId} (led ${led} of ${before.length} partitions) killed ` +
          `${s(killedAt - started)} into the job: new leaders after ${s(movedAfter)}, output stalled ${s(kill.ms)} (from +${kill.startMs} ms); ` +
          `restarted ${s(restartedAt - killedAt)} after the kill with ${Math.round((100 * atRestart) / N)}% of the output offsets written, ` +
          `back after ${s(backAfter)}: longest stall from the restart on ${s(restart.ms)} (from +${s(restart.startMs)}); ` +
          `job ${s(finishedAt - started)} (${Math.round((N * 1000) / (finishedAt - started))} records/s), read back ${s(Date.now() - readAt)}, ` +
          `test ${s(Date.now() - testStart)}`,
      );
    } finally {
      await output.stop();
      await run.close();
    }
  } finally {
    await inspect.disconnect();
  }
});
