/**
 * Faults under a running streaming job, each on its own run, each asserting 0 lost and 0 duplicated
 * on the output read with read_committed: kill -9 of the worker, of the shim, and a stop and restart
 * of the Temporal dev server on the same database file (kill -9 of the shared broker, which runs
 * alone, is in streaming-broker-kill.test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { SageClient } from "../../client/sage-client.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { startDevServer, startScratchServer } from "../../dev/temporal-server.js";
import { startWorker, startWorkerProcess, until } from "../support/harness.js";
import {
  STREAM_FIXTURE,
  assertExactlyOnceInOrder,
  prepareStream,
  produceRange,
  startShim,
  startShimProcess,
  streamCliEnv,
  waitForRecords,
} from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

const N = 20_000;

test("kill -9 of the worker mid-batch: a new worker finishes the job, 0 lost, 0 duplicated", async () => {
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 500 };
  const { topics: t, config } = await prepareStream("kill-worker", { partitions: 2, records: N, slowMs: 1, overrides });
  const client = await SageClient.connect({ config });
  const first = await startWorkerProcess(STREAM_FIXTURE, config, client, streamCliEnv(config, t));
  const { job, shim } = await startShim(client, pipeline, config, "kill-worker");
  let second: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  try {
    await until("a few batches done", async () => ((await job.progress()).counts["out"]?.out ?? 0) >= 2_000 || undefined);
    first.child.kill("SIGKILL");
    second = await startWorkerProcess(STREAM_FIXTURE, config, client, streamCliEnv(config, t));
    await waitForRecords(job, N);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N, "each record counted once in the workflows");
    await assertExactlyOnceInOrder(t.output, N);
  } finally {
    await shim.stop();
    await first.stop();
    await second?.stop();
    await client.close();
  }
});

test("kill -9 of the shim mid-stream and a restart: 0 lost, 0 duplicated", async () => {
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 200 };
  const { topics: t, config, kafka } = await prepareStream("kill-shim", { partitions: 4, records: N / 2, overrides });
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const job = new StreamJobHandle(client, "streamtest", "kill-shim", ["sage/streamtest/kill-shim/p0", "sage/streamtest/kill-shim/p1"]);
  let shim = startShimProcess(config, t, "kill-shim");
  try {
    await until("some records through", async () => ((await job.progress()).records >= 2_000 ? true : undefined));
    await shim.kill();
    await produceRange(kafka, t.input, N / 2, N);
    shim = startShimProcess(config, t, "kill-shim");
    await waitForRecords(job, N);
    await job.stop();
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N);
    await assertExactlyOnceInOrder(t.output, N);
  } finally {
    await shim.kill();
    await client.close();
    await worker.stop();
  }
});

test("stop and restart of the Temporal dev server on the same database file: 0 lost, 0 duplicated", async () => {
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 200 };
  const { topics: t, config: base } = await prepareStream("restart-server", { partitions: 2, records: N, overrides });
  const server = await startScratchServer(base.dir);
  const config = { ...base, temporal: { ...base.temporal, address: server.address } };
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const { job, shim } = await startShim(client, pipeline, config, "restart-server");
  let restarted: Awaited<ReturnType<typeof startDevServer>> | null = null;
  try {
    await until("some records through", async () => ((await job.progress()).counts["out"]?.out ?? 0) >= 3_000 || undefined);
    await server.stop();
    await new Promise((r) => setTimeout(r, 2_000));
    restarted = await startDevServer({
      address: server.address,
      uiPort: 0,
      headless: true,
      dbFile: join(base.dir, "temporal.db"),
      logFile: join(base.dir, "temporal.log"),
      startTimeoutMs: 120_000,
    });
    await waitForRecords(job, N);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N);
    await assertExactlyOnceInOrder(t.output, N);
  } finally {
    await shim.stop();
    await client.close();
    await worker.stop();
    await restarted?.stop();
  }
});
