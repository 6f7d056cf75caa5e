/**
 * kill -9 of the broker under a running streaming job, and its restart on its data dir: 0 lost and 0
 * duplicated on the output read with read_committed. It kills the test run's shared broker, so
 * `npm test` runs it alone; the other faults are in streaming-faults.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { until } from "../support/harness.js";
import {
  createTopics,
  EXACTLY_ONCE,
  exactlyOnce,
  keysOutOfOrder,
  produceRange,
  readOutput,
  runStreaming,
  streamConfig,
  streamTopics,
  testBroker,
  testKafka,
  waitForRecords,
} from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

const N = 20_000;

async function checkOutput(output: string): Promise<void> {
  const out = await readOutput(testKafka(), output);
  assert.deepEqual(exactlyOnce(out, 0, N), EXACTLY_ONCE);
  assert.deepEqual(keysOutOfOrder(out), []);
}

test("kill -9 of the broker and a restart on its data dir: 0 lost, 0 duplicated", async () => {
  const t = streamTopics("kill-broker");
  delete process.env.STREAM_SLOW_MS;
  Object.assign(process.env, t.env);
  const config = streamConfig("kill-broker", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 200 });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  await produceRange(kafka, t.input, 0, N);
  const run = await runStreaming(pipeline, config, "kill-broker");
  const { job, shim } = run;
  const broker = testBroker();
  try {
    await until("some records through", async () => ((await job.progress()).counts["out"]?.out ?? 0) >= 3_000 || undefined);
    broker.kill();
    await new Promise((r) => setTimeout(r, 3_000));
    broker.restart();
    await waitForRecords(job, N);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N);
    await checkOutput(t.output);
  } finally {
    broker.restart(); // no-op when it runs: the next tests need it
    await run.close();
  }
});
