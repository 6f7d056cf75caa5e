/**
 * Runs the wordcount pipeline from a client script: a worker in this process, submit, wait, print.
 * Usage: `npx tsx examples/wordcount/client.ts <input.txt> <output.jsonl>` (server from `sage dev`).
 */
import { SageClient, createSageWorker, createLogger, loadConfig } from "sage-temporal/client";
import pipeline from "./pipeline.js";

const [input = "examples/wordcount/input.txt", output = ".sage/out/wordcount.jsonl"] = process.argv.slice(2);
const config = loadConfig();
const worker = await createSageWorker({ pipeline, config, logger: createLogger(config.log.level) });
const running = worker.run();

const client = await SageClient.connect({ config });
const job = await client.submit(pipeline, { params: { input, output } });
console.log(`submitted ${job.workflowId}`);
try {
  const result = await job.result();
  console.log(`done: ${result.counts.lines?.in ?? 0} lines in, ${result.counts.out?.out ?? 0} records out -> ${result.outputs.out}`);
} finally {
  await client.close();
  await worker.shutdown();
  await running;
}
