/**
 * Records the workflow histories that `test/replay/replay.test.ts` replays against today's workflow
 * code: starts its own dev server (fresh database, free ports), runs a few representative jobs with
 * in-process workers and writes each run's history to test/replay/histories/<name>.json.
 *
 * Run `npx tsx scripts/record-histories.ts` after an intentional change of the workflow's
 * command sequence, and commit the new files together with the change. Names as arguments
 * (`npx tsx scripts/record-histories.ts routed`) record only those jobs.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { historyToJSON } from "@temporalio/common/lib/proto-utils.js";
import type { Pipeline } from "../core/api/pipeline.js";
import { loadConfig } from "../client/config-loader.js";
import { startScratchServer } from "../dev/temporal-server.js";
import { createLogger } from "../client/logger.js";
import { JobFailedError, SageClient } from "../client/sage-client.js";
import { createSageWorker } from "../worker/sage-worker.js";
import wordcount from "../examples/wordcount/pipeline.js";
import deadLetter from "../test/fixtures/replay-dead-letter.js";
import fails from "../test/fixtures/replay-fails.js";
import routed from "../test/fixtures/routed.js";

/** Where the histories go. */
const HISTORIES_DIR = resolve("test/replay/histories");
/** A history file larger than this is too big to be test data. */
const MAX_BYTES = 200 * 1024;

/** One job to record. */
interface Recording {
  /** File name (without `.json`). */
  name: string;
  pipeline: Pipeline;
  /** Input lines of the job's file source. */
  lines: string[];
  /** Configuration overrides on top of the recording defaults. */
  overrides?: Record<string, unknown>;
  /** Whether the job is meant to fail. */
  fails?: boolean;
}

const WORDS = ["temporal", "replays", "every", "workflow", "history", "deterministically", "stage", "split", "record", "sink"];
const text = (n: number): string[] => Array.from({ length: n }, (_, i) => `line ${i}: ${WORDS.slice(i % 5, (i % 5) + 5).join(" ")}`);

const RECORDINGS: Recording[] = [
  { name: "wordcount", pipeline: wordcount, lines: text(60), overrides: { "execution.split-bytes": "1kb" } },
  {
    name: "dead-letter",
    pipeline: deadLetter,
    lines: text(40).map((l, i) => (i % 7 === 3 ? `${l} poison` : l)),
    overrides: { "execution.split-bytes": "1kb" },
  },
  // Fusion off: every operator is its own stage, so record batches cross stage edges in history.
  { name: "unfused", pipeline: wordcount, lines: text(12), overrides: { "execution.fusion": false, "execution.split-bytes": "400b" } },
  { name: "failed", pipeline: fails, lines: text(40).map((l, i) => (i === 25 ? `${l} boom` : l)), overrides: { "execution.split-bytes": "1kb" }, fails: true },
  // A routed job, unfused: batches cross the router's branches and the union in history (every fourth line is short).
  {
    name: "routed",
    pipeline: routed,
    lines: text(15).map((l, i) => (i % 4 === 3 ? l.slice(0, 24) : l)),
    overrides: { "execution.fusion": false, "execution.split-bytes": "400b" },
  },
];

/** Runs one recording to its end and writes its history; returns the file. */
async function record(r: Recording, address: string, dir: string): Promise<string> {
  const work = join(dir, r.name);
  mkdirSync(work, { recursive: true });
  const input = join(work, "input.txt");
  writeFileSync(input, `${r.lines.join("\n")}\n`);
  const config = loadConfig({
    env: {},
    overrides: {
      "temporal.address": address,
      "temporal.task-queue": `record-${r.name}`,
      "data-dir": join(work, "data"),
      "execution.parallelism": 2,
      "log.level": "error",
      ...r.overrides,
    },
  });
  const worker = await createSageWorker({ pipeline: r.pipeline, config, logger: createLogger(config.log.level) });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(r.pipeline, { jobId: r.name, params: { input, output: join(work, "out.jsonl") } });
    let failed = false;
    try {
      await job.result();
    } catch (err) {
      if (!(err instanceof JobFailedError)) throw err;
      failed = true;
    }
    if (failed !== Boolean(r.fails)) throw new Error(`job "${r.name}" ${failed ? "failed" : "succeeded"}, but it is meant to ${r.fails ? "fail" : "succeed"}`);
    const history = await job.handle.fetchHistory();
    const file = join(HISTORIES_DIR, `${r.name}.json`);
    writeFileSync(file, `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
    const size = statSync(file).size;
    if (size > MAX_BYTES) throw new Error(`${file} is ${size} bytes, over ${MAX_BYTES}: make the job "${r.name}" smaller`);
    process.stderr.write(`recorded ${file} (${history.events?.length ?? 0} events, ${size} bytes)\n`);
    return file;
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
  }
}

const dir = mkdtempSync(join(tmpdir(), "sage-record-"));
const server = await startScratchServer(dir, { log: (m) => process.stderr.write(`${m}\n`) });
let code = 0;
try {
  mkdirSync(HISTORIES_DIR, { recursive: true });
  const only = process.argv.slice(2);
  const unknown = only.filter((name) => !RECORDINGS.some((r) => r.name === name));
  if (unknown.length > 0) throw new Error(`no recording named ${unknown.join(", ")} (known: ${RECORDINGS.map((r) => r.name).join(", ")})`);
  for (const r of RECORDINGS.filter((r) => only.length === 0 || only.includes(r.name))) await record(r, server.address, dir);
} catch (err) {
  process.stderr.write(`record-histories: ${(err as Error).stack ?? String(err)}\n`);
  code = 1;
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
