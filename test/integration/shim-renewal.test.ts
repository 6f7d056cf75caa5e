/**
 * A shim whose partition workflows have no worker: its progress queries fail until it renews its
 * connection to the server (twice, 20 s apart). Calls still on the replaced connection may be
 * waiting to retry, and the Temporal client's retry timer throws on a closed channel where nothing
 * catches it: the shim died that way ("Channel has been shut down") 20 s after a renewal. It must
 * live on, say once that no worker polls the job's task queue, and deliver every record exactly
 * once when a worker comes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SageClient } from "../../client/sage-client.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { startWorkerProcess, until } from "../support/harness.js";
import { STREAM_FIXTURE, assertExactlyOnceInOrder, prepareStream, startShimProcess, streamCliEnv, waitForRecords } from "../support/kafka.js";

const N = 2_000;
const RENEWED = "opening a fresh connection";
const NO_WORKER = "no worker polls task queue";

test("a shim says no worker polls its task queue, renews its server connection while no worker answers, lives on, and delivers once a worker comes", async () => {
  const overrides = { "execution.parallelism": 2, "kafka.max-batch-records": 200 };
  const { topics: t, config, kafka } = await prepareStream("shim-renewal", { partitions: 2, records: N, overrides });
  const client = await SageClient.connect({ config });
  const job = new StreamJobHandle(client, "streamtest", "shim-renewal", ["sage/streamtest/shim-renewal/p0", "sage/streamtest/shim-renewal/p1"]);
  const shim = startShimProcess(config, t, "shim-renewal");
  let worker: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  const alive = (): boolean => shim.child.exitCode === null && shim.child.signalCode === null;
  try {
    // Two renewals: the first connection's calls are retried past the second (where the shim died).
    const renewals = (): number => shim.log().split(RENEWED).length - 1;
    await until("two connection renewals, or the shim's end", async () => (renewals() >= 2 || !alive() ? true : undefined), 150_000);
    await new Promise((r) => setTimeout(r, 10_000));
    assert.ok(alive(), `the shim lives on after renewing its connection:\n${shim.log().slice(-3000)}`);
    // It also said why its queries went unanswered, once.
    const warning = `${NO_WORKER} ${config.temporal["task-queue"]}: the job's workflows cannot run or answer until one does; start \`sage worker <module>\` for pipeline streamtest`;
    assert.equal(shim.log().split(warning).length - 1, 1, shim.log().slice(-3000));
    worker = await startWorkerProcess(STREAM_FIXTURE, config, client, streamCliEnv(config, t));
    await waitForRecords(job, N);
    await job.stop();
    await assertExactlyOnceInOrder(t.output, N, kafka);
    assert.ok(alive() || shim.child.exitCode === 0, "the shim stopped with the job, not before");
  } finally {
    await shim.kill();
    await worker?.stop();
    await client.close();
  }
});
