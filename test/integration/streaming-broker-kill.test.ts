/**
 * kill -9 of the broker under a running streaming job, and its restart on its data dir: 0 lost and 0
 * duplicated on the output read with read_committed. It kills the test run's shared broker, so
 * `npm test` runs it alone; the other faults are in streaming-faults.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { until } from "../support/harness.js";
import { assertExactlyOnceInOrder, prepareStream, runStreaming, testBroker, waitForRecords } from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

const N = 20_000;

test("kill -9 of the broker and a restart on its data dir: 0 lost, 0 duplicated", async () => {
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 200 };
  const { topics: t, config } = await prepareStream("kill-broker", { partitions: 2, records: N, overrides });
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
    await assertExactlyOnceInOrder(t.output, N);
  } finally {
    broker.restart(); // no-op when it runs: the next tests need it
    await run.close();
  }
});
