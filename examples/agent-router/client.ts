/**
 * Runs the agent router from a client script: indexes the RAG example's corpus if needed (the
 * question branch retrieves from it), a worker in this process, submit, wait, print the answers.
 * Usage: `npx tsx examples/agent-router/client.ts [messages.jsonl] [answers.jsonl] [index]`
 * (server from `sage dev`, models from `sage models serve`).
 */
import { join, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { SageClient, createSageWorker, createLogger, indexDocuments, indexExists, loadConfig } from "sage-temporal/client";
import pipeline, { type Answer } from "./pipeline.js";

const config = loadConfig();
const [
  input = "examples/agent-router/messages.jsonl",
  output = resolve(config["data-dir"], "out", "agent-answers.jsonl"),
  index = resolve(config["data-dir"], "index", "rag-corpus"),
] = process.argv.slice(2);
const logger = createLogger(config.log.level);

if (!indexExists(index)) {
  const r = await indexDocuments({ docs: join(import.meta.dirname, "..", "rag", "corpus"), index, config, logger });
  console.log(`indexed ${r.chunks} chunks of ${r.documents} documents into ${index}`);
}

const worker = await createSageWorker({ pipeline, config, logger });
const running = worker.run();
const client = await SageClient.connect({ config });
const job = await client.submit(pipeline, { params: { input, output, index } });
console.log(`submitted ${job.workflowId}`);
try {
  const result = await job.result();
  const answers = readFileSync(result.outputs["response-aggregator"]!, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Answer)
    .sort((a, b) => a.id - b.id);
  for (const a of answers) console.log(`${a.id} [${a.branch}] ${a.reply.replace(/\n/g, "\n    ")}`);
  const branches = ["qa", "cmd", "chat"].map((b) => `${b} ${result.counts[b]?.out ?? 0}`).join(", ");
  console.log(`done: ${result.counts.messages?.in ?? 0} messages in, answers by branch: ${branches} -> ${result.outputs["response-aggregator"]}`);
  if (result.deadLetters > 0) console.log(`${result.deadLetters} dead letter(s) -> ${result.deadLetterPath}`);
} finally {
  await client.close();
  await worker.shutdown();
  await running;
}
