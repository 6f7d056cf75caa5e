/**
 * Records the workflow histories that `test/replay/replay.test.ts` replays against today's workflow
 * code: starts its own dev server (fresh database, free ports), runs a few representative jobs with
 * in-process workers and writes each run's history to test/replay/histories/<name>.json. The
 * streaming recording also starts its own Kafka broker (`bash scripts/kafka.sh install` first).
 *
 * Run `npx tsx scripts/record-histories.ts` after an intentional change of the workflow's
 * command sequence, and commit the new files together with the change. Names as arguments
 * (`npx tsx scripts/record-histories.ts routed`) record only those jobs.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@temporalio/client";
import type { temporal } from "@temporalio/proto";
import { historyToJSON } from "@temporalio/common/lib/proto-utils.js";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { BATCH_SIGNAL, HOLD_SIGNAL } from "../core/plan/stream.js";
import { loadConfig } from "../client/config-loader.js";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { createLogger } from "../client/logger.js";
import { JobFailedError, SageClient } from "../client/sage-client.js";
import { KafkaShim, shimOptionsOf } from "../streaming/shim.js";
import { StreamJob } from "../streaming/stream-job.js";
import { createSageWorker } from "../worker/sage-worker.js";
import wordcount from "../examples/wordcount/pipeline.js";
import deadLetter from "../test/fixtures/replay-dead-letter.js";
import fails from "../test/fixtures/replay-fails.js";
import routed from "../test/fixtures/routed.js";
import streamPipeline from "../test/fixtures/stream-pipeline.js";

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

/** Configuration of one recording: its own task queue and data directory. */
function recordingConfig(name: string, address: string, work: string, overrides: Record<string, unknown> = {}): SageConfig {
  return loadConfig({
    env: {},
    overrides: {
      "temporal.address": address,
      "temporal.task-queue": `record-${name}`,
      "data-dir": join(work, "data"),
      "execution.parallelism": 2,
      "log.level": "error",
      ...overrides,
    },
  });
}

/** Writes one run's history as test data; returns the file. */
function writeHistory(name: string, history: temporal.api.history.v1.IHistory): string {
  const file = join(HISTORIES_DIR, `${name}.json`);
  writeFileSync(file, `${JSON.stringify(JSON.parse(historyToJSON(history)), null, 1)}\n`);
  const size = statSync(file).size;
  if (size > MAX_BYTES) throw new Error(`${file} is ${size} bytes, over ${MAX_BYTES}: make the job "${name}" smaller`);
  process.stderr.write(`recorded ${file} (${history.events?.length ?? 0} events, ${size} bytes)\n`);
  return file;
}

/** Runs one recording to its end and writes its history; returns the file. */
async function record(r: Recording, address: string, dir: string): Promise<string> {
  const work = join(dir, r.name);
  mkdirSync(work, { recursive: true });
  const input = join(work, "input.txt");
  writeFileSync(input, `${r.lines.join("\n")}\n`);
  const config = recordingConfig(r.name, address, work, r.overrides);
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
    return writeHistory(r.name, await job.handle.fetchHistory());
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
  }
}

/** Name of the streaming recording: it writes `<name>-held.json` and `<name>-resumed.json`. */
const STREAM = "stream";
/** The streaming job's input: rounds of records, each produced once the last is through, so that each makes its own batch signal. */
const STREAM_ROUNDS = 30;
const STREAM_ROUND_RECORDS = 5;

/** Every run of a workflow, oldest first, with its history (continue-as-new links each run to the one before). */
async function runHistories(client: Client, workflowId: string): Promise<temporal.api.history.v1.IHistory[]> {
  const runs: temporal.api.history.v1.IHistory[] = [];
  let runId: string | undefined;
  do {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    runs.unshift(history);
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  } while (runId);
  return runs;
}

/** True when the run got a checkpoint hold from the shim and closed by continuing as new. */
function heldAndContinued(history: temporal.api.history.v1.IHistory): boolean {
  const events = history.events ?? [];
  return (
    events.some((e) => e.workflowExecutionSignaledEventAttributes?.signalName === HOLD_SIGNAL) &&
    events[events.length - 1]?.workflowExecutionContinuedAsNewEventAttributes != null
  );
}

/**
 * Runs a streaming job of one partition workflow with a small event budget, so its runs checkpoint
 * under a hold, and writes two of its runs: the first held one (continued as new) and the last
 * (resumed from a checkpoint, fed batches, then stopped).
 */
async function recordStream(address: string, dir: string): Promise<void> {
  const work = join(dir, STREAM);
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(work, "kafka") }, (m) => process.stderr.write(`${m}\n`));
  // The fixture reads its topics from the environment when it compiles.
  Object.assign(process.env, { STREAM_IN: "record.in", STREAM_OUT: "record.out", STREAM_GROUP: "record" });
  const config = recordingConfig(STREAM, address, work, {
    "execution.parallelism": 1,
    "kafka.brokers": broker.address,
    "kafka.dead-letter-topic": "record.dlq",
    "kafka.events-per-run": 40,
  });
  const logger = createLogger(config.log.level);
  const kafka = createKafkajsClient({ brokers: [broker.address], clientId: "sage-record" });
  const worker = await createSageWorker({ pipeline: streamPipeline, config, logger });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  const job = StreamJob.create(client, streamPipeline, { jobId: STREAM });
  const shim = new KafkaShim(job, kafka, shimOptionsOf(config), logger);
  try {
    const admin = await kafka.admin();
    for (const topic of ["record.in", "record.out", "record.dlq"]) await admin.ensureTopic(topic, 1);
    await admin.close();
    await shim.start();
    const producer = await kafka.producer();
    let id = 0;
    /** Produces one round of records and waits until the job has processed every record so far. */
    const round = async (): Promise<void> => {
      const batch = Array.from({ length: STREAM_ROUND_RECORDS }, () => ({ key: `k${id % 7}`, value: JSON.stringify({ id, key: `k${id % 7}`, seq: id++ }) }));
      await producer.send("record.in", batch);
      for (let waited = 0; ((await job.progress()).counts["out"]?.out ?? 0) < id; waited += 100) {
        if (waited > 60_000) throw new Error(`the streaming job did not process ${id} records in a minute`);
        await sleep(100);
      }
    };
    for (let r = 0; r < STREAM_ROUNDS; r++) await round();
    await producer.close();
    await job.stop();
    await shim.done;
    const runs = await runHistories(client.temporal, job.workflowIds[0]!);
    const held = runs.find(heldAndContinued);
    const last = runs[runs.length - 1]!;
    const signals = (last.events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === BATCH_SIGNAL).length;
    if (!held || runs.length < 2 || signals === 0)
      throw new Error(`no run checkpointed under a hold, or the last run got no batch (${runs.length} run(s)): run it again`);
    writeHistory(`${STREAM}-held`, held);
    writeHistory(`${STREAM}-resumed`, last);
  } finally {
    await shim.stop();
    await client.close();
    await worker.shutdown();
    await running;
    broker.stop();
  }
}

const dir = mkdtempSync(join(tmpdir(), "sage-record-"));
const server = await startScratchServer(dir, { log: (m) => process.stderr.write(`${m}\n`) });
let code = 0;
try {
  mkdirSync(HISTORIES_DIR, { recursive: true });
  const only = process.argv.slice(2);
  const known = [...RECORDINGS.map((r) => r.name), STREAM];
  const unknown = only.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`no recording named ${unknown.join(", ")} (known: ${known.join(", ")})`);
  for (const r of RECORDINGS.filter((r) => only.length === 0 || only.includes(r.name))) await record(r, server.address, dir);
  if (only.length === 0 || only.includes(STREAM)) await recordStream(server.address, dir);
} catch (err) {
  process.stderr.write(`record-histories: ${(err as Error).stack ?? String(err)}\n`);
  code = 1;
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
