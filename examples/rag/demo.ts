/**
 * The RAG demo, one command: starts (or reuses) the Temporal dev server and the local model server,
 * indexes the shipped corpus if needed, runs the RAG pipeline over a few questions through a worker
 * in this process, and prints each answer with its sources, the model usage and the Web UI link.
 *
 *   npx tsx examples/rag/demo.ts [questions.jsonl]
 */
import { join, resolve } from "node:path";
import { createLogger, createSageWorker, indexDocuments, indexExists, loadConfig, readUsage, SageClient, uiLink } from "sage-temporal/client";
import { LOCAL_BASE_URL, startModelServer, type ModelServer } from "sage-temporal/models";
import { ensureTemporalServer } from "sage-temporal/testing";
import { ModelUnavailableError } from "sage-temporal";
import { readFileSync } from "node:fs";
import pipeline, { type RagAnswer } from "./pipeline.js";

const here = resolve(import.meta.dirname);
const questions = resolve(process.argv[2] ?? join(here, "questions.jsonl"));
const config = loadConfig();
const logger = createLogger(config.log.level);
const say = (m: string) => process.stderr.write(`${m}\n`);

await ensureTemporalServer(config, say);

// The model server: reuse one that answers at the configured endpoint, else serve the local models here.
const baseUrl = config.llm["base-url"] ?? LOCAL_BASE_URL;
let models: ModelServer | null = null;
const up = await fetch(new URL("/health", baseUrl))
  .then((r) => r.ok)
  .catch(() => false);
if (!up) {
  const url = new URL(baseUrl);
  if (!["127.0.0.1", "localhost"].includes(url.hostname)) throw new ModelUnavailableError(`no model endpoint answers at ${baseUrl}`, null);
  models = await startModelServer({ port: Number(url.port || 80) });
  say(`local model server at ${models.url}/v1`);
}
const runConfig = { ...config, llm: { ...config.llm, "base-url": baseUrl } };

const index = resolve(config["data-dir"], "index", "rag-corpus");
if (!indexExists(index)) {
  const r = await indexDocuments({ docs: join(here, "corpus"), index, config: runConfig, logger });
  say(`indexed ${r.chunks} chunks of ${r.documents} documents into ${index}`);
}

const worker = await createSageWorker({ pipeline, config: runConfig, logger });
const running = worker.run();
const client = await SageClient.connect({ config: runConfig });
try {
  const output = resolve(config["data-dir"], "out", "rag-answers.jsonl");
  const job = await client.submit(pipeline, { params: { questions, index, output } });
  say(`submitted ${job.workflowId}`);
  const result = await job.result();
  const answers = readFileSync(result.outputs["response-sink"]!, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as RagAnswer)
    .sort((a, b) => a.id - b.id);
  for (const a of answers) {
    console.log(`\nQ${a.id}: ${a.question}\nA: ${a.answer}\n   sources: ${a.hits.map((h) => `${h.source} (${h.score})`).join(", ")}`);
  }
  const usage = await readUsage(resolve(config["data-dir"]), "rag", job.jobId);
  if (usage) {
    for (const [op, u] of Object.entries(usage.operators)) {
      const tokens = u.completionTokens > 0 ? `${u.promptTokens} prompt + ${u.completionTokens} completion tokens` : `${u.promptTokens} tokens`;
      console.log(`${op}: ${u.requests} request(s), ${u.cached} from cache, ${u.inputs} input(s), ${tokens}`);
    }
  }
  if (result.deadLetters > 0) console.log(`${result.deadLetters} question(s) went to the dead letters: ${result.deadLetterPath}`);
  console.log(`\n${answers.length} answers -> ${result.outputs["response-sink"]}`);
  console.log(`Web UI: ${uiLink(runConfig, { workflowId: job.workflowId, runId: job.runId }) ?? "-"}`);
  console.log(`jobs of ${pipeline.name} in the Web UI: ${uiLink(runConfig, { pipeline: pipeline.name }) ?? "-"}`);
} finally {
  await client.close();
  await worker.shutdown();
  await running;
  await models?.close();
}
