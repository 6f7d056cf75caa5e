/**
 * Benchmark: `sage whatif` against a full re-run, for a change in the RAG chain's last stage (its
 * only one: the chain fuses). A streaming RAG job (`examples/rag/stream-pipeline.ts`) answers N
 * questions from Kafka (the recorded run); then the reworded prompt
 * (`stream-pipeline-reworded.ts`) is tried two ways, each from the recorded job's response cache:
 * as a full re-run (a new streaming job of the changed chain over the same topic, on a copy of the
 * data dir), and as a what-if (both sides in process, nothing written to Kafka), then the what-if again. Prints wall time, model calls (paid)
 * and cache hits of each, and the what-if's diff. `npx tsx bench/whatif.ts [--questions N]` (N <= 40; default 16).
 */
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { loadConfig } from "../client/config-loader.js";
import { createLogger } from "../client/logger.js";
import { indexDocuments } from "../client/indexer.js";
import { SageClient } from "../client/sage-client.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { readUsage } from "../connectors/llm/usage-ledger.js";
import { definePipeline, KafkaSink, KafkaSource, type Pipeline } from "../index.js";
import type { SageConfig } from "../core/config/schema.js";
import { startModelServerProcess } from "../models/server-process.js";
import { KafkaShim, shimOptionsOf } from "../streaming/shim.js";
import { StreamJob } from "../streaming/stream-job.js";
import { createSageWorker } from "../worker/sage-worker.js";
import { whatIf } from "../replay/whatif/whatif.js";
import { renderWhatif } from "../cli/whatif.js";
import { ragChain, type Question, type RagAnswer } from "../examples/rag/pipeline.js";
import { machineLine, printTable, saveResult } from "./machine.js";

const arg = process.argv.indexOf("--questions");
const N = Math.min(40, arg > 0 ? Number(process.argv[arg + 1]) : 16);
const texts = readFileSync("examples/rag/questions.jsonl", "utf8")
  .split("\n")
  .filter((l) => l !== "")
  .map((l) => (JSON.parse(l) as Question).question);
const prefixes = ["", "In short: ", "Briefly, ", "Explain: ", "Quick question: "];
const questions: Question[] = Array.from({ length: N }, (_, i) => ({ id: i, question: `${prefixes[Math.floor(i / texts.length)]}${texts[i % texts.length]}` }));

const dir = mkdtempSync(join(tmpdir(), "sage-bench-whatif-"));
console.log(`machine: ${machineLine()}`);
console.log(`questions: ${N}; kafka.max-batch-records 8`);
const models = await startModelServerProcess();
const server = await startScratchServer(dir);
const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
const kafka = createKafkajsClient({ brokers: [broker.address], clientId: "bench-whatif" });
const logger = createLogger("warn");
const topics = { input: "rag-q", output: "rag-a", rerun: "rag-a-rerun", dlq: "rag-dlq" };
process.env.RAG_INPUT_TOPIC = topics.input;
process.env.RAG_OUTPUT_TOPIC = topics.output;
process.env.RAG_GROUP = "rag-bench";
const { default: base } = await import("../examples/rag/stream-pipeline.js");
const { default: changed, REWORDED_INSTRUCTION } = await import("../examples/rag/stream-pipeline-reworded.js");

const configFor = (queue: string, data = "data"): SageConfig =>
  loadConfig({
    env: {},
    overrides: {
      "temporal.address": server.address,
      "temporal.task-queue": queue,
      "data-dir": join(dir, data),
      "log.level": "warn",
      "llm.base-url": `${models.url}/v1`,
      "kafka.brokers": broker.address,
      "kafka.dead-letter-topic": topics.dlq,
      "kafka.max-batch-records": 8,
      "monitoring.enabled": false,
    },
  });

/** Runs `pipeline` as a streaming job until its sink wrote N records; its wall time (submit to last answer) and usage. */
async function streamingRun(pipeline: Pipeline, jobId: string, queue: string, params: Record<string, string>, data = "data") {
  const config = configFor(queue, data);
  const worker = await createSageWorker({ pipeline, config, logger });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  const t = performance.now();
  const job = StreamJob.create(client, pipeline, { jobId, params });
  const shim = new KafkaShim(job, kafka, shimOptionsOf(config), logger);
  await shim.start();
  try {
    for (;;) {
      const p = await job.progress().catch(() => null);
      if ((p?.counts["response-sink"]?.out ?? 0) + (p?.deadLetters ?? 0) >= N) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const ms = performance.now() - t;
    await job.stop();
    await shim.done;
    return { ms, usage: (await readUsage(config["data-dir"], pipeline.name, jobId))?.total };
  } finally {
    await shim.stop();
    await client.close();
    await worker.shutdown();
    await running;
  }
}

try {
  const index = join(dir, "index");
  await indexDocuments({ docs: "examples/rag/corpus", index, config: configFor("bench-whatif-index"), logger });
  const admin = await kafka.admin();
  for (const t of Object.values(topics)) await admin.ensureTopic(t, 1);
  await admin.close();
  const producer = await kafka.producer();
  await producer.send(
    topics.input,
    questions.map((q) => ({ key: String(q.id), value: JSON.stringify(q) })),
  );
  await producer.close();
  const params = { index };

  const recorded = await streamingRun(base, "rag-stream", "bench-whatif-base", params);

  cpSync(join(dir, "data"), join(dir, "data-rerun"), { recursive: true });
  // The changed chain as a new job: its own group and output topic, on a copy of the recorded job's data dir (its response cache).
  const rerunPipeline = definePipeline("rag-stream-rerun", (env) =>
    ragChain(
      env.fromSource(KafkaSource.topic<Question>(topics.input, { groupId: "rag-bench-rerun", startFrom: "earliest" }), { name: "user-queries" }),
      env.param("index"),
      REWORDED_INSTRUCTION,
    ).sink(KafkaSink.topic<RagAnswer>(topics.rerun, { key: (a) => String(a.id) }), { name: "response-sink" }),
  );
  const rerun = await streamingRun(rerunPipeline, "rag-stream-rerun", "bench-whatif-rerun", params, "data-rerun");

  const config = configFor("bench-whatif-base");
  const client = await SageClient.connect({ config });
  const tryIt = () =>
    whatIf({
      config,
      kafka,
      job: { pipeline: base.name, jobId: "rag-stream", plan: base.compile({ parallelism: 1, fusion: true }).plan, params },
      base,
      changed,
      runtime: client.runtimeOptions(),
      deadLetterTopic: topics.dlq,
      memo: true,
      maxRecords: 8,
      logger,
    });
  let t = performance.now();
  const report = await tryIt();
  const whatifMs = performance.now() - t;
  // The same what-if again (after, say, a look at the diff): both sides from the memo.
  t = performance.now();
  const again = await tryIt();
  const againMs = performance.now() - t;
  await client.close();
  console.log(renderWhatif(report));

  const calls = (u: { requests: number; cached: number } | undefined) => (u ? u.requests - u.cached : 0);
  const rows = [
    ["recorded job (stream-pipeline.ts), cold cache", (recorded.ms / 1000).toFixed(1), String(calls(recorded.usage)), String(recorded.usage?.cached ?? 0)],
    [
      "what-if, reworded prompt (base + changed side, in process)",
      (whatifMs / 1000).toFixed(1),
      `${report.changed.modelCalls + report.base.modelCalls} (changed ${report.changed.modelCalls}, base ${report.base.modelCalls})`,
      String(report.changed.cacheHits + report.base.cacheHits),
    ],
    [
      "the same what-if again (memo warm)",
      (againMs / 1000).toFixed(1),
      String(again.changed.modelCalls + again.base.modelCalls),
      String(again.changed.cacheHits + again.base.cacheHits),
    ],
    ["full re-run of the reworded chain as a new streaming job", (rerun.ms / 1000).toFixed(1), String(calls(rerun.usage)), String(rerun.usage?.cached ?? 0)],
  ];
  printTable(["run", "wall s", "model calls (paid)", "cache hits"], rows);
  const path = saveResult("whatif", {
    questions: N,
    recorded,
    whatif: { ms: whatifMs, counts: report.counts, base: report.base, changed: report.changed },
    again: { ms: againMs, base: again.base, changed: again.changed },
    rerun,
    entries: report.diff.entries,
  });
  console.log(`wrote ${path}`);
} finally {
  broker.stop();
  await server.stop();
  await models.stop();
}
