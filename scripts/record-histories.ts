/**
 * Records the workflow histories that `test/replay/replay.test.ts` replays against today's workflow
 * code: starts its own dev server (fresh database, free ports), runs a few representative jobs with
 * in-process workers and writes each run's history to test/replay/histories/<name>.json. The
 * streaming recordings also start their own Kafka broker (`bash scripts/kafka.sh install` first);
 * the keyed one (`stream-keyed`) goes to test/replay/keyed-histories/ (`keyed-replay.test.ts`).
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
import type { KafkaClient } from "../connectors/kafka/client.js";
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
import keyedPipeline, { type KeyedEv } from "../test/fixtures/replay-keyed-pipeline.js";
import { missingKeyedPieces, readKeyedRun } from "../test/replay/keyed-history.js";

/** Where the histories go. */
const HISTORIES_DIR = resolve("test/replay/histories");
/** Where the keyed streaming job's history goes (`test/replay/keyed-replay.test.ts` replays it). */
const KEYED_DIR = resolve("test/replay/keyed-histories");
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
function writeHistory(name: string, history: temporal.api.history.v1.IHistory, dir = HISTORIES_DIR): string {
  const file = join(dir, `${name}.json`);
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

/** Name of the keyed streaming recording: it writes `test/replay/keyed-histories/<name>.json`. */
const KEYED = "stream-keyed";
/** The keyed job's input: rounds of records over a few keys, each round followed by the quiet second in which every key's processing-time timer fires. */
const KEYED_ROUNDS = 12;
const KEYED_ROUND_RECORDS = 6;
const KEYED_KEYS = 3;
/** Event time between consecutive records: a round spans about one 2 s window, so windows close as rounds go by. */
const KEYED_STEP_MS = 300;
/** History events after which a run of the keyed job checkpoints: a few rounds per run. */
const KEYED_EVENTS_PER_RUN = 120;
/** The keyed job's topics. */
const KEYED_TOPICS = { input: "record.keyed.in", out: "record.keyed.out", dlq: "record.keyed.dlq" };

/** Waits until `done` answers true; fails after a minute, saying what did not happen. */
async function waitFor(what: string, done: () => Promise<boolean>): Promise<void> {
  for (let waited = 0; !(await done()); waited += 100) {
    if (waited > 60_000) throw new Error(`${what} did not happen within a minute`);
    await sleep(100);
  }
}

/**
 * Produces the keyed job's rounds: after each, waits until both keyed stages took every record so
 * far and each key's processing-time timer fired (the job was quiet meanwhile, so a durable
 * workflow timer woke the partition workflow for a timer unit).
 */
async function produceKeyedRounds(kafka: KafkaClient, job: StreamJob): Promise<void> {
  const producer = await kafka.producer();
  const t0 = Date.now();
  let id = 0;
  const count = async (op: string, side: "in" | "out"): Promise<number> => (await job.progress()).counts[op]?.[side] ?? 0;
  try {
    for (let r = 1; r <= KEYED_ROUNDS; r++) {
      const batch = Array.from({ length: KEYED_ROUND_RECORDS }, (): { key: string; value: string } => {
        const e: KeyedEv = { id, k: `k${id % KEYED_KEYS}`, ts: t0 + id++ * KEYED_STEP_MS };
        return { key: e.k, value: JSON.stringify(e) };
      });
      await producer.send(KEYED_TOPICS.input, batch);
      await waitFor(`the keyed stages taking ${id} records`, async () => (await count("window", "in")) >= id && (await count("remind", "in")) >= id);
      await waitFor(`round ${r}'s timers firing`, async () => (await count("out-remind", "in")) >= r * KEYED_KEYS);
    }
  } finally {
    await producer.close();
  }
}

/**
 * Runs the keyed streaming job (`test/fixtures/replay-keyed-pipeline.ts`) as one partition
 * workflow with a small event budget and writes one of its runs: the first that started from a
 * checkpoint, took source and repartition batches, ran a timer unit and continued as new.
 */
async function recordKeyed(address: string, dir: string): Promise<void> {
  const work = join(dir, KEYED);
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(work, "kafka") }, (m) => process.stderr.write(`${m}\n`));
  // The fixture reads its topics from the environment when it compiles.
  Object.assign(process.env, { REPLAY_KEYED_IN: KEYED_TOPICS.input, REPLAY_KEYED_OUT: KEYED_TOPICS.out });
  const config = recordingConfig(KEYED, address, work, {
    "execution.parallelism": 1,
    "kafka.brokers": broker.address,
    "kafka.dead-letter-topic": KEYED_TOPICS.dlq,
    "kafka.events-per-run": KEYED_EVENTS_PER_RUN,
  });
  const logger = createLogger(config.log.level);
  const kafka = createKafkajsClient({ brokers: [broker.address], clientId: "sage-record-keyed" });
  const worker = await createSageWorker({ pipeline: keyedPipeline, config, logger });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  const job = StreamJob.create(client, keyedPipeline, { jobId: KEYED });
  const shim = new KafkaShim(job, kafka, shimOptionsOf(config), logger);
  try {
    const admin = await kafka.admin();
    for (const topic of [KEYED_TOPICS.input, `${KEYED_TOPICS.out}.window`, `${KEYED_TOPICS.out}.remind`, KEYED_TOPICS.dlq]) await admin.ensureTopic(topic, 1);
    await admin.close();
    await shim.start();
    await produceKeyedRounds(kafka, job);
    await job.stop();
    await shim.done;
    const runs = (await runHistories(client.temporal, job.workflowIds[0]!)).map((h) => ({ history: h, missing: missingKeyedPieces(readKeyedRun(h)) }));
    const chosen = runs.find((r) => r.missing.length === 0);
    if (!chosen) throw new Error(`none of ${runs.length} run(s) holds every keyed piece (the first lacks ${runs[0]?.missing.join("; ")}): run it again`);
    mkdirSync(KEYED_DIR, { recursive: true });
    writeHistory(KEYED, chosen.history, KEYED_DIR);
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
  const known = [...RECORDINGS.map((r) => r.name), STREAM, KEYED];
  const unknown = only.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`no recording named ${unknown.join(", ")} (known: ${known.join(", ")})`);
  for (const r of RECORDINGS.filter((r) => only.length === 0 || only.includes(r.name))) await record(r, server.address, dir);
  if (only.length === 0 || only.includes(STREAM)) await recordStream(server.address, dir);
  if (only.length === 0 || only.includes(KEYED)) await recordKeyed(server.address, dir);
} catch (err) {
  process.stderr.write(`record-histories: ${(err as Error).stack ?? String(err)}\n`);
  code = 1;
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
