/**
 * Runs the enrich streaming job from a client script: a worker and the shim in this process, until
 * `count` records have gone through (or Ctrl-C), then a clean stop.
 * Usage: `npx tsx examples/enrich/client.ts [count]` (dev server and broker from `sage dev --kafka`).
 */
import { KafkaShim, SageClient, StreamJob, createLogger, createSageWorker, kafkaClientOf, loadConfig, shimOptionsOf } from "sage-temporal/client";
import pipeline from "./pipeline.js";

const count = Number(process.argv[2] ?? 1_000);
const config = loadConfig();
const logger = createLogger(config.log.level);
const worker = await createSageWorker({ pipeline, config, logger });
const running = worker.run();

const client = await SageClient.connect({ config });
const job = StreamJob.create(client, pipeline);
const shim = new KafkaShim(job, kafkaClientOf(config, logger), shimOptionsOf(config), logger);
await shim.start();
console.log(`streaming job ${job.jobId}: ${job.workflowIds.join(", ")}`);
let stopping = false;
process.once("SIGINT", () => (stopping = true));
try {
  for (;;) {
    const p = await job.progress().catch(() => null);
    if (p) console.log(`${p.records} records in, ${p.counts.out?.out ?? 0} out, ${p.deadLetters} dead letters`);
    if (stopping || (p && p.records >= count)) break;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  await job.stop(); // partition workflows finish what they accepted; the shim sees it and drains
  await shim.done;
  const result = await job.result();
  console.log(`stopped: ${result.records} records, ${result.counts.out?.out ?? 0} enriched orders written exactly once, ${result.deadLetters} dead letters`);
} finally {
  await shim.stop();
  await client.close();
  await worker.shutdown();
  await running;
}
