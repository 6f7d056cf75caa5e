/**
 * The core exactly-once run of streaming.test.ts with `kafka.client: confluent` for the shim's
 * consumer, the sink's transactions and the test's own producer and reader: 100k records across 4
 * partitions and 4 partition workflows, each seen once, in per-key order, with read_committed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { assertExactlyOnceInOrder, prepareStream, runStreaming, testKafkaClient, waitForRecords } from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

process.env.SAGE_TEST_KAFKA_CLIENT = "confluent";

test("kafka.client confluent: 100k records across 4 partitions and 4 workflows, each exactly once, in per-key order", async () => {
  const N = 100_000;
  const overrides = { "execution.parallelism": 4, "kafka.max-batch-records": 2000 };
  const { topics: t, config, kafka } = await prepareStream("e2e-confluent", { partitions: 4, records: N, overrides });
  assert.equal(config.kafka.client, "confluent");
  assert.equal(testKafkaClient(), "confluent");
  const run = await runStreaming(pipeline, config, "e2e-confluent");
  const { job, shim } = run;
  try {
    const p = await waitForRecords(job, N);
    assert.equal(p.counts["out"]!.out, N);
    assert.equal(p.deadLetters, 0);
    assert.equal(p.workflows.filter((w) => w && w.batches > 0).length, 4, "every partition workflow got batches");
    await job.stop();
    await shim.done;
    assert.equal((await job.result()).records, N);
    const out = await assertExactlyOnceInOrder(t.output, N, kafka);
    assert.ok(out.every((r) => r.double === r.id * 2));
  } finally {
    await run.close();
  }
});
