/**
 * Runs the agent router from a client script: a worker in this process, submit, wait, print the
 * answers per branch. Usage: `npx tsx examples/agent-router/client.ts <messages.jsonl> <answers.jsonl>`
 * (server from `sage dev`).
 */
import { SageClient, createSageWorker, createLogger, loadConfig } from "sage-temporal/client";
import pipeline from "./pipeline.js";

const [input = "examples/agent-router/messages.jsonl", output = ".sage/out/answers.jsonl"] = process.argv.slice(2);
const config = loadConfig();
const worker = await createSageWorker({ pipeline, config, logger: createLogger(config.log.level) });
const running = worker.run();

const client = await SageClient.connect({ config });
const job = await client.submit(pipeline, { params: { input, output } });
console.log(`submitted ${job.workflowId}`);
try {
  const result = await job.result();
  const branches = ["qa", "cmd", "chat"].map((b) => `${b} ${result.counts[b]?.out ?? 0}`).join(", ");
  console.log(`done: ${result.counts.messages?.in ?? 0} messages in, answers by branch: ${branches} -> ${result.outputs["response-aggregator"]}`);
  if (result.deadLetters > 0) console.log(`${result.deadLetters} dead letter(s) -> ${result.deadLetterPath}`);
} finally {
  await client.close();
  await worker.shutdown();
  await running;
}
