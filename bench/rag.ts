/**
 * Benchmark: the RAG example end to end on the local models, as a Temporal job (worker in this
 * process, model server in a child process) beside the same chain of operator objects called
 * directly in a plain loop (no Temporal), in the same run, both with the response cache off.
 * Prints questions/s and their ratio, embeddings per request (batching), and the cache hit rate of a
 * re-run. `npx tsx bench/rag.ts [--questions N] [--lineage both]` (N <= 40; default 16). With
 * `--lineage both`, the Temporal run (cache off) runs first with `execution.lineage` off, then on
 * (the default), in the same sitting: their questions/s ratio and the lineage bytes per answer.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startScratchServer } from "../dev/temporal-server.js";
import { loadConfig } from "../client/config-loader.js";
import { createLogger } from "../client/logger.js";
import { indexDocuments } from "../client/indexer.js";
import { SageClient } from "../client/sage-client.js";
import { createLlmServices } from "../connectors/llm/services.js";
import { readUsage } from "../connectors/llm/usage-ledger.js";
import type { FunctionContext, RecordContext } from "../core/api/context.js";
import { LLM_SERVICES } from "../core/api/llm.js";
import type { SageConfig } from "../core/config/schema.js";
import { startModelServerProcess } from "../models/server-process.js";
import { createSageWorker } from "../worker/sage-worker.js";
import pipeline, { type Question } from "../examples/rag/pipeline.js";
import { machineLine, printTable, saveResult } from "./machine.js";

const arg = process.argv.indexOf("--questions");
const N = Math.min(40, arg > 0 ? Number(process.argv[arg + 1]) : 16);
const lineageArg = process.argv.indexOf("--lineage");
/** `--lineage both`: a Temporal run with `execution.lineage` off before the one with it on. */
const LINEAGE_BOTH = lineageArg > 0 && process.argv[lineageArg + 1] === "both";

/** Bytes of every file under `path` (0 when it does not exist). */
function bytesUnder(path: string): number {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch {
    return 0;
  }
  return names.reduce((n, name) => n + (statSync(join(path, name)).isDirectory() ? bytesUnder(join(path, name)) : statSync(join(path, name)).size), 0);
}

const base = readFileSync("examples/rag/questions.jsonl", "utf8")
  .split("\n")
  .filter((l) => l !== "")
  .map((l) => (JSON.parse(l) as Question).question);
const prefixes = ["", "In short: ", "Briefly, ", "Explain: ", "Quick question: "];
const questions: Question[] = Array.from({ length: N }, (_, i) => ({ id: i, question: `${prefixes[Math.floor(i / base.length)]}${base[i % base.length]}` }));

const dir = mkdtempSync(join(tmpdir(), "sage-bench-rag-"));
const questionsFile = join(dir, "questions.jsonl");
writeFileSync(questionsFile, questions.map((q) => JSON.stringify(q)).join("\n") + "\n");
console.log(`machine: ${machineLine()}`);
console.log(`questions: ${N} (distinct), chat max 48 tokens, k = 3`);

const models = await startModelServerProcess();
const server = await startScratchServer(dir);
const logger = createLogger("warn");
const configFor = (label: string, cache: boolean, lineage = true): SageConfig => {
  const c = loadConfig({
    env: {},
    overrides: {
      "temporal.address": server.address,
      "temporal.task-queue": `bench-rag-${label}`,
      "data-dir": join(dir, label),
      "log.level": "warn",
      "llm.base-url": `${models.url}/v1`,
      "llm.cache": cache,
      "execution.lineage": lineage,
    },
  });
  return c;
};

try {
  const index = join(dir, "index");
  await indexDocuments({ docs: "examples/rag/corpus", index, config: configFor("index", true), logger });

  /** The RAG chain's operator objects called directly, in order, on one micro-batch: no Temporal. */
  const direct = async (): Promise<{ ms: number; answers: number }> => {
    const config = configFor("direct", false);
    const services = createLlmServices(config, resolve(config["data-dir"]), logger);
    const compiled = pipeline.compile({ parallelism: 1 });
    const chain = compiled.plan.nodes.filter((n) => n.kind === "map" || n.kind === "mapBatch");
    const t = performance.now();
    let batch: unknown[] = questions;
    for (const node of chain) {
      const fn = compiled.functions.get(node.id) as {
        open?(c: FunctionContext): unknown;
        map?(v: unknown, c: RecordContext): unknown;
        mapBatch?(v: unknown[], c: RecordContext): Promise<unknown[]>;
      };
      const service = async <T>(name: string): Promise<T> => {
        if (name !== LLM_SERVICES) throw new Error(`the direct run has no service "${name}"`);
        return services as T;
      };
      await fn.open?.({ operatorId: node.id, operatorName: node.name, pipeline: "rag", parallelism: 1, logger, service });
      const ctx: RecordContext = { operatorId: node.id, jobId: "direct", params: { index }, attempt: 1, logger, service };
      if (node.kind === "mapBatch") batch = await fn.mapBatch!(batch, ctx);
      else {
        const out: unknown[] = [];
        for (const v of batch) out.push(await fn.map!(v, ctx));
        batch = out;
      }
    }
    writeFileSync(join(dir, "direct.jsonl"), batch.map((a) => JSON.stringify(a)).join("\n") + "\n");
    const ms = performance.now() - t;
    await services.close();
    return { ms, answers: batch.length };
  };

  /** The same as a Temporal job: submit to result, worker in this process. */
  const onTemporal = async (label: string, cache: boolean, jobId: string, lineage = true): Promise<{ ms: number; answers: number; config: SageConfig }> => {
    const config = configFor(label, cache, lineage);
    const worker = await createSageWorker({ pipeline, config, logger });
    const running = worker.run();
    const client = await SageClient.connect({ config });
    try {
      const t = performance.now();
      const job = await client.submit(pipeline, { jobId, params: { questions: questionsFile, index, output: join(dir, `${label}-${jobId}.jsonl`) } });
      const result = await job.result();
      return { ms: performance.now() - t, answers: result.counts["response-sink"]?.out ?? 0, config };
    } finally {
      await client.close();
      await worker.shutdown();
      await running;
    }
  };

  const d = await direct();
  const off = LINEAGE_BOTH ? await onTemporal("temporal-lineage-off", false, "nocache-lineage-off", false) : null;
  const s0 = await models.stats();
  const tmp = await onTemporal("temporal", false, "nocache");
  const s1 = await models.stats();
  // Re-run with the cache on: the first run fills it, the re-run should be answered from it.
  await onTemporal("cached", true, "fill");
  const s2 = await models.stats();
  const rerun = await onTemporal("cached", true, "rerun");
  const s3 = await models.stats();
  const usage = await readUsage(resolve(rerun.config["data-dir"]), "rag", "rerun");

  const qps = (r: { ms: number; answers: number }) => (r.answers * 1000) / r.ms;
  const embeddingsPerRequest = (s1.embeddedInputs - s0.embeddedInputs) / (s1.embeddings - s0.embeddings);
  const hitRate = usage ? usage.total.cached / usage.total.requests : 0;
  const rows = [
    ["direct chain (no Temporal)", String(d.answers), (d.ms / 1000).toFixed(1), qps(d).toFixed(2), "1.00"],
    ["Sage on Temporal", String(tmp.answers), (tmp.ms / 1000).toFixed(1), qps(tmp).toFixed(2), (qps(tmp) / qps(d)).toFixed(2)],
    ["Sage on Temporal, cached re-run", String(rerun.answers), (rerun.ms / 1000).toFixed(1), qps(rerun).toFixed(2), (qps(rerun) / qps(d)).toFixed(2)],
  ];
  if (off)
    rows.splice(1, 0, [
      "Sage on Temporal, execution.lineage off",
      String(off.answers),
      (off.ms / 1000).toFixed(1),
      qps(off).toFixed(2),
      (qps(off) / qps(d)).toFixed(2),
    ]);
  printTable(["run", "answers", "seconds", "questions/s", "ratio to direct"], rows);
  const lineageBytes = bytesUnder(join(tmp.config["data-dir"], "lineage"));
  if (off) {
    console.log(
      `lineage on / off (questions/s): ${(qps(tmp) / qps(off)).toFixed(3)}; lineage bytes per answer: ${(lineageBytes / Math.max(1, tmp.answers)).toFixed(1)} (off: ${bytesUnder(join(off.config["data-dir"], "lineage"))} bytes in all)`,
    );
  }
  console.log(
    `embeddings per request (Temporal run): ${embeddingsPerRequest.toFixed(1)} (${s1.embeddedInputs - s0.embeddedInputs} inputs in ${s1.embeddings - s0.embeddings} request(s))`,
  );
  console.log(
    `cache hit rate on the re-run: ${(hitRate * 100).toFixed(0)}% (${usage?.total.cached}/${usage?.total.requests} model calls answered from the cache; model server saw ${s3.chat - s2.chat} chat and ${s3.embeddings - s2.embeddings} embedding requests)`,
  );
  const path = saveResult("rag", {
    questions: N,
    direct: { seconds: d.ms / 1000, qps: qps(d) },
    temporal: { seconds: tmp.ms / 1000, qps: qps(tmp), ratioToDirect: qps(tmp) / qps(d), lineageBytes },
    ...(off ? { temporalLineageOff: { seconds: off.ms / 1000, qps: qps(off), ratioToDirect: qps(off) / qps(d), lineageOnOverOff: qps(tmp) / qps(off) } } : {}),
    cachedRerun: {
      seconds: rerun.ms / 1000,
      qps: qps(rerun),
      ratioToDirect: qps(rerun) / qps(d),
      hitRate,
      modelRequests: s3.chat - s2.chat + (s3.embeddings - s2.embeddings),
    },
    embeddingsPerRequest,
  });
  console.log(`saved ${path}`);
} finally {
  await server.stop();
  await models.stop();
}
