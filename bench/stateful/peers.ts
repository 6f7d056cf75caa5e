/**
 * Runs the stateful bench's Java peers (Kafka Streams, Flink): builds them if needed, starts one as
 * a child JVM on an input topic, reads both output topics with read_committed until every expected
 * window is there, stops the JVM and says how fast it was and how much memory it took.
 */
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { ensureEventTimeTopic } from "./events.js";
import { parseResult, type SlidingResult, type TumblingResult, type WindowResults } from "./results.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** Where `peers/build.sh` puts each peer's jar and libraries. */
export const PEERS_DIR = resolve(HERE, "../../.tools/stateful-peers");

/** The Java peers. */
export type PeerName = "kafka-streams" | "flink";

const MAIN_CLASS: Record<PeerName, string> = { "kafka-streams": "sage.bench.StatefulStreams", flink: "sage.bench.StatefulFlink" };

/** What a peer run reads, writes and must produce. */
export interface PeerRunOptions {
  brokers: string;
  /** The input topic, already produced (`produceEvents`); the peer reads it from the beginning. */
  input: string;
  /** Output topics; created with `partitions` if missing (Flink needs them before the job), with `EVENT_TIME_TOPIC_CONFIG`. */
  outputs: { tumbling: string; sliding: string };
  /** Kafka Streams application id / Flink group id and transactional-id prefix: fresh per run. */
  appId: string;
  /** Windows each output must reach (the reference's counts) before the run stops. */
  expected: { tumbling: number; sliding: number };
  /** Records counted for records/s: the events, without the flush records. */
  inputRecords: number;
  /** Partitions of output topics it creates (default 4). */
  partitions?: number;
  /**
   * How often each peer commits its output (default 1000 ms): Flink's checkpoint interval, and Kafka
   * Streams' commit.interval.ms (whose exactly_once_v2 default is 100 ms), so both commit alike.
   */
  commitIntervalMs?: number;
  /** JVM heap (default 1024 MB). */
  heapMb?: number;
  /** Give up after this long (default 15 min). */
  timeoutMs?: number;
  /** After the last expected window, how long to keep reading to catch duplicates (default 2 s; not timed). */
  settleMs?: number;
  /** State dir / checkpoints and the JVM's log (default: a new temp dir). */
  workDir?: string;
  log?: (line: string) => void;
}

/** What a peer run measured, and the windows it emitted (to compare with the reference). */
export interface PeerRun {
  peer: PeerName;
  inputRecords: number;
  /** `inputRecords` over `jobMs`. */
  recordsPerSecond: number;
  /** From the first input record the JVM consumed (its clock) to the read of the last expected window (read_committed, so committed by then). */
  jobMs: number;
  /** From the JVM's start to the last expected window. */
  wallMs: number;
  /** From the JVM's start to its first input record (JVM, topology or MiniCluster and job start). */
  startupMs: number;
  /**
   * CPU time (user + system) the JVM spent from its first input record to the last window: on a
   * shared machine a steadier figure than records/s, which counts time other processes held the cores.
   */
  jobCpuMs: number;
  /** Peak resident memory of the JVM (VmHWM), MB. */
  rssPeakMb: number;
  results: WindowResults;
  /** The JVM's stdout and stderr. */
  logFile: string;
}

/** Builds the peers unless their jars are up to date (`peers/build.sh`); throws with Maven's output on failure. */
export function buildPeers(peers: PeerName[] = ["kafka-streams", "flink"]): void {
  const res = spawnSync("bash", [join(HERE, "peers", "build.sh"), ...peers], { encoding: "utf8" });
  if (res.status !== 0) throw new Error(`bench/stateful/peers/build.sh failed (exit ${res.status}):\n${res.stderr || res.stdout}`);
}

/** Runs the Kafka Streams peer (exactly_once_v2, RocksDB, 2 stream threads) to completion. */
export function runKafkaStreams(options: PeerRunOptions): Promise<PeerRun> {
  return runPeer("kafka-streams", options);
}

/** Runs the Flink peer (local MiniCluster, parallelism 2, checkpoints every 1 s, exactly-once sink, heap state) to completion. */
export function runFlink(options: PeerRunOptions): Promise<PeerRun> {
  return runPeer("flink", options);
}

/** Runs one peer: build, output topics, reader, JVM; resolves once every expected window was read and the JVM stopped. */
export async function runPeer(peer: PeerName, o: PeerRunOptions): Promise<PeerRun> {
  buildPeers([peer]);
  const log = o.log ?? (() => {});
  const workDir = o.workDir ?? mkdtempSync(join(tmpdir(), `sage-stateful-${peer}-`));
  const kafka = createKafkajsClient({ brokers: [o.brokers], clientId: `stateful-${peer}` });
  for (const topic of [o.outputs.tumbling, o.outputs.sliding]) await ensureEventTimeTopic([o.brokers], topic, o.partitions ?? 4);
  const reader = await readWindows(kafka, o);
  const logFile = join(workDir, `${peer}.log`);
  const jvm = startJvm(peer, o, workDir, logFile);
  log(`${peer}: JVM pid ${jvm.pid}, log ${logFile}`);
  try {
    const timeout = o.timeoutMs ?? 900_000;
    const lastAt = await Promise.race([
      reader.complete,
      jvm.exited.then((code) => Promise.reject(new Error(`${peer} exited (${code}) before its output was complete; ${reader.progress()}; see ${logFile}`))),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${peer}: no complete output within ${timeout} ms; ${reader.progress()}; see ${logFile}`)), timeout).unref(),
      ),
    ]);
    const rssPeakMb = peakRssMb(jvm.pid);
    const cpuAtEnd = cpuMs(jvm.pid);
    await new Promise((r) => setTimeout(r, o.settleMs ?? 2_000));
    const { at: firstInputAt, cpuMs: cpuAtFirstInput } = jvm.firstInput() ?? { at: null, cpuMs: 0 };
    if (firstInputAt === null) throw new Error(`${peer} did not report its first input record; see ${logFile}`);
    const jobMs = lastAt - firstInputAt;
    log(`${peer}: ${reader.progress()}`);
    return {
      peer,
      inputRecords: o.inputRecords,
      recordsPerSecond: o.inputRecords / (jobMs / 1000),
      jobMs,
      wallMs: lastAt - jvm.startedAt,
      startupMs: firstInputAt - jvm.startedAt,
      jobCpuMs: cpuAtEnd - cpuAtFirstInput,
      rssPeakMb,
      results: reader.results(),
      logFile,
    };
  } finally {
    await jvm.stop();
    await reader.stop();
  }
}

/** A peer JVM: its pid, its start time, the first-input time it prints, and a stop that ends it. */
function startJvm(peer: PeerName, o: PeerRunOptions, workDir: string, logFile: string) {
  const dir = join(PEERS_DIR, peer);
  const args = [
    `-Xmx${o.heapMb ?? 1024}m`,
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-cp",
    `${join(dir, "lib")}/*:${join(dir, "peer.jar")}`,
    MAIN_CLASS[peer],
    o.brokers,
    o.input,
    o.outputs.tumbling,
    o.outputs.sliding,
    o.appId,
    join(workDir, "state"),
    String(o.commitIntervalMs ?? 1000),
  ];
  const startedAt = Date.now();
  const child = spawn("java", args, { stdio: ["ignore", "pipe", "pipe"] });
  const out = createWriteStream(logFile);
  child.stderr.pipe(out);
  let firstInput: { at: number; cpuMs: number } | null = null;
  createInterface({ input: child.stdout }).on("line", (line) => {
    out.write(`${line}\n`);
    const m = /^FIRST_INPUT (\d+)$/.exec(line);
    if (m && firstInput === null) firstInput = { at: Number(m[1]), cpuMs: cpuMs(child.pid!) };
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    pid: child.pid!,
    startedAt,
    exited,
    /** When the JVM read its first input record (its clock), and its CPU time then. */
    firstInput: (): { at: number; cpuMs: number } | null => firstInput,
    async stop(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(killer);
      }
      out.end();
    },
  };
}

/** Peak resident set size of a live process, from /proc (0 where there is none). */
export function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU time (user + system) of a live process so far, ms, from /proc (0 where there is none). */
function cpuMs(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Reads both output topics (read_committed) from the beginning; `complete` resolves with Date.now() once both reach their expected count. */
export async function readWindows(kafka: KafkaClient, o: PeerRunOptions) {
  const tumbling: TumblingResult[] = [];
  const sliding: SlidingResult[] = [];
  let done!: (at: number) => void;
  const complete = new Promise<number>((r) => (done = r));
  let finished = false;
  const consumer = kafka.consumer({
    groupId: `${o.appId}-reader`,
    topics: [o.outputs.tumbling, o.outputs.sliding],
    fromBeginning: true,
    maxWaitMs: 100,
    minBytes: 1,
    maxBytesPerPartition: 1024 * 1024,
    concurrency: 2 * (o.partitions ?? 4),
    sessionTimeoutMs: 10_000,
    readCommitted: true,
  });
  let crashed: Error | null = null;
  consumer.onCrash((e) => (crashed = e));
  await consumer.start(async (batch, control) => {
    const into: Array<TumblingResult | SlidingResult> = batch.topic === o.outputs.tumbling ? tumbling : sliding;
    for (const m of batch.messages) into.push(parseResult(m.value!.toString()));
    control.resolve(batch.messages[batch.messages.length - 1]!.offset);
    if (!finished && tumbling.length >= o.expected.tumbling && sliding.length >= o.expected.sliding) {
      finished = true;
      done(Date.now());
    }
  });
  return {
    complete,
    results: (): WindowResults => ({ tumbling: [...tumbling], sliding: [...sliding] }),
    progress: () =>
      `read tumbling ${tumbling.length}/${o.expected.tumbling}, sliding ${sliding.length}/${o.expected.sliding}${crashed ? `; reader crashed: ${String(crashed)}` : ""}`,
    stop: () => consumer.stop(),
  };
}
