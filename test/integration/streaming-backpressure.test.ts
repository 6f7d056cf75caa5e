/**
 * Backpressure of a streaming job against the real broker and the real dev server: with a slow stage,
 * the shim's unacknowledged batches stay within kafka.max-unacked-batches and its memory stays flat
 * while the producer keeps writing. It samples a process's memory, so `npm test` runs it alone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SageClient } from "../../client/sage-client.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { startWorker, until } from "../support/harness.js";
import { createTopics, produceRange, startShimProcess, streamConfig, streamTopics, testKafka } from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

test("backpressure: with a slow stage the shim's unacknowledged batches and memory stay bounded while the producer keeps writing", async () => {
  const t = streamTopics("backpressure");
  const slow = { ...t, env: { ...t.env, STREAM_SLOW_MS: "2" } };
  Object.assign(process.env, slow.env);
  const maxUnacked = 2;
  const config = streamConfig("backpressure", t.dlq, { "execution.parallelism": 1, "kafka.max-batch-records": 100, "kafka.max-unacked-batches": maxUnacked });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  const worker = await startWorker(pipeline, config);
  const shimProc = startShimProcess(config, slow, "backpressure");
  const client = await SageClient.connect({ config });
  const job = new StreamJobHandle(client, "streamtest", "backpressure", ["sage/streamtest/backpressure/p0"]);
  let producing = true;
  let produced = 0;
  const producer = (async () => {
    while (producing) {
      await produceRange(kafka, t.input, produced, produced + 2_000);
      produced += 2_000;
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    const samples: Array<{ pending: number; rssKb: number }> = [];
    await until("the first batches", async () => ((await job.progress()).batches > 0 ? true : undefined));
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const p = await job.progress().catch(() => null);
      if (p) samples.push({ pending: p.pending, rssKb: shimProc.rssKb() });
    }
    producing = false;
    await producer;
    const p = await job.progress();
    // Produced far faster than the slow stage runs (2 ms a record): most records still wait in Kafka, not in the shim or the workflow.
    assert.ok(produced - p.records > 5_000, `backlog stayed in Kafka: produced ${produced}, accepted ${p.records}`);
    // Two source partitions feed the one workflow through one sender, which checks for room before each signal.
    assert.ok(Math.max(...samples.map((s) => s.pending)) <= maxUnacked, JSON.stringify(samples));
    const rss = samples.map((s) => s.rssKb);
    const warm = rss.slice(2);
    // Flat, not growing with the backlog: the last samples are within 64 MiB of the smallest after warm-up.
    assert.ok(Math.max(...warm.slice(-5)) - Math.min(...warm) < 64 * 1024, `shim RSS KiB: ${rss.join(", ")}`);
    await job.stop();
    await job.result();
  } finally {
    producing = false;
    await producer.catch(() => undefined);
    await shimProc.kill();
    await client.close();
    await worker.stop();
  }
});
