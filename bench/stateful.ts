/**
 * Benchmark: keyed event-time windows, Kafka -> Kafka, exactly once. A tumbling 10 s count and a
 * sliding 30 s / 10 s latency aggregate per service, in Sage, Kafka Streams 4.3.1 and Flink 2.2
 * (`bench/stateful/peers/`), one after another over the same events on one broker; each engine's
 * windows must equal the plain reference (a difference fails the run). Then Sage's restore of a
 * cold worker from the changelog, and the bounded variant over a file against the plain reference
 * function. It starts its own dev server and broker. `--backends memory,embedded` runs Sage once
 * per state backend (rows side by side); the restore then also measures, for the embedded backend,
 * a restart on the same disk (local recovery) beside the cold one.
 *
 *   npx tsx bench/stateful.ts [--events 1000000] [--services 10000] [--seed 16] [--parallelism 2]
 *     [--engines sage,kafka-streams,flink] [--parts streaming,restore,bounded] [--workers 1]
 *     [--backends memory] [--smoke]
 */
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { once } from "node:events";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startScratchServer, type DevServer } from "../dev/temporal-server.js";
import { startBroker, type Broker } from "../dev/kafka-broker.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { machineLine, printTable, saveResult } from "./machine.js";
import { generateEvents, maxLatenessMs, produceEvents, type StatefulEvent } from "./stateful/events.js";
import { buildPeers, runPeer, type PeerName } from "./stateful/peers.js";
import { compareResults, referenceWindows, type WindowResults } from "./stateful/results.js";
import { measureRestore, runSageBounded, runSageStreaming, type SageClusterOptions } from "./stateful/sage.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const SMOKE = process.argv.includes("--smoke");
const EVENTS = Number(arg("events", SMOKE ? "20000" : "1000000"));
const SERVICES = Number(arg("services", SMOKE ? "1000" : "10000"));
const SEED = Number(arg("seed", "16"));
/** Partition workflows (Sage), and so instances of each keyed operator; the peers run 2 threads / slots too. */
const PARALLELISM = Number(arg("parallelism", "2"));
const ENGINES = arg("engines", "sage,kafka-streams,flink").split(",");
const PARTS = arg("parts", "streaming,restore,bounded").split(",");
/** `sage worker` processes of the streaming run: each runs its activities on one event loop (one core). */
const WORKERS = Number(arg("workers", "1"));
/** Sage's state backends (`state.backend`), one Sage run each. */
const BACKENDS = arg("backends", "memory").split(",") as Array<"memory" | "embedded">;
// A run with the embedded backend saves apart (`<date>-stateful-backends.json`): a day's stateful file stays the run that wrote it.
for (const b of BACKENDS) if (b !== "memory" && b !== "embedded") throw new Error(`--backends: "${b}" is not memory or embedded`);
const PARTITIONS = 4;
const INPUT = "stateful.in";

/** One engine's row of the streaming table. */
interface EngineRow {
  engine: string;
  recordsPerSecond: number;
  jobMs: number;
  startupMs: number;
  wallMs: number;
  cpuMs: number;
  rssPeakMb: number;
  tumbling: string;
  sliding: string;
  historyBytesPerRecord?: number;
  changelogBytesPerRecord?: number;
}

const failures: string[] = [];
/** Raw figures for `bench/results/<date>-stateful.json`. */
const results: Record<string, unknown> = {};
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "-");

/** Compares an engine's windows with the reference; a difference is printed in full and fails the run. */
function check(engine: string, reference: WindowResults, actual: WindowResults): { tumbling: string; sliding: string } {
  const verdict = (what: "tumbling" | "sliding") => {
    const diff = compareResults<(typeof reference)[typeof what][number]>(reference[what], actual[what]);
    console.log(`  ${engine} ${what}: ${diff.summary}`);
    if (!diff.equal) failures.push(`${engine}: ${what} windows differ from the reference (${diff.summary.split("\n")[0]})`);
    return diff.equal ? "equal" : "DIFFERENT";
  };
  return { tumbling: verdict("tumbling"), sliding: verdict("sliding") };
}

/** Runs one engine over the produced input; its row, or null when it failed (recorded in `failures`). */
async function runEngine(engine: string, cluster: SageClusterOptions, reference: WindowResults, dir: string): Promise<EngineRow | null> {
  const expected = { tumbling: reference.tumbling.length, sliding: reference.sliding.length };
  // Each Sage backend writes its own topics (a run must not find another's windows there).
  const topic = engine === "sage" && cluster.backend === "embedded" ? "sage-embedded" : engine;
  const outputs = { tumbling: `stateful.${topic}.tumbling`, sliding: `stateful.${topic}.sliding` };
  console.log(
    `\n${engine}: load average before ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  try {
    if (engine === "sage") {
      const r = await runSageStreaming({
        ...cluster,
        input: INPUT,
        outputs,
        jobId: `stateful-${Date.now()}`,
        expected,
        inputRecords: EVENTS,
        workers: WORKERS,
      });
      const backend = cluster.backend ?? "memory";
      const verdicts = check(`${engine} (${backend})`, reference, r.results);
      console.log(
        `  sage: history ${fmt(r.history.bytes)} B in ${r.history.runs} runs (${fmt(r.history.events)} events); checkpoints ${r.checkpoint.count}, ` +
          `last stage activity -> next run's first p50 ${fmt(r.checkpoint.p50Ms)} ms, max ${fmt(r.checkpoint.maxMs)} ms (hold -> close p50 ${fmt(r.checkpoint.holdToCloseP50Ms)} ms); ` +
          `changelog ${fmt(r.changelog.bytes)} B on disk in ${fmt(r.changelog.offsets)} offsets; repartition ${fmt(r.repartition.bytes)} B in ${fmt(r.repartition.offsets)} offsets; ` +
          `CPU workers+shim ${fmt(r.cpuMs.sage / 1000, 1)} s, dev server ${fmt(r.cpuMs.server / 1000, 1)} s; RSS ${WORKERS} worker(s) ${fmt(r.rssPeakMb.workers)} MB, shim ${fmt(r.rssPeakMb.shim)} MB; dead letters ${r.final.deadLetters}`,
      );
      results[backend === "memory" ? "sage" : `sage-${backend}`] = { ...r, results: undefined };
      return {
        engine: `Sage (${WORKERS} worker${WORKERS > 1 ? "s" : ""} + shim, ${backend} state)`,
        ...r,
        cpuMs: r.cpuMs.sage,
        rssPeakMb: r.rssPeakMb.workers + r.rssPeakMb.shim,
        ...verdicts,
        historyBytesPerRecord: r.history.bytes / EVENTS,
        changelogBytesPerRecord: r.changelog.bytes / EVENTS,
      };
    }
    const r = await runPeer(engine as PeerName, {
      brokers: cluster.brokers,
      input: INPUT,
      outputs,
      appId: `stateful-${engine}-${Date.now()}`,
      expected,
      inputRecords: EVENTS,
      workDir: mkdtempSync(join(dir, `${engine}-`)),
      log: (line) => console.log(`  ${line}`),
    });
    results[engine] = { ...r, results: undefined };
    const name = engine === "flink" ? "Flink 2.2.1" : "Kafka Streams 4.3.1";
    return { engine: name, ...r, cpuMs: r.jobCpuMs, ...check(engine, reference, r.results) };
  } catch (err) {
    console.log(`  ${engine} FAILED: ${(err as Error).stack ?? String(err)}`);
    failures.push(`${engine} did not complete: ${(err as Error).message.split("\n")[0]}`);
    return null;
  }
}

/** Every engine over the same input topic, then the side-by-side table. */
async function streaming(cluster: SageClusterOptions, events: StatefulEvent[], reference: WindowResults, dir: string): Promise<void> {
  const kafka = createKafkajsClient({ brokers: [cluster.brokers], clientId: "stateful-bench" });
  const produced = await produceEvents(kafka, INPUT, events, PARTITIONS);
  console.log(`produced ${fmt(produced.records)} records (${PARTITIONS} flush events included) in ${fmt(produced.ms / 1000, 1)} s`);
  const rows: EngineRow[] = [];
  for (const engine of ENGINES) {
    for (const backend of engine === "sage" ? BACKENDS : [undefined]) {
      const row = await runEngine(engine, backend ? { ...cluster, backend } : cluster, reference, dir);
      if (row) rows.push(row);
    }
  }
  const streams = rows.find((r) => r.engine.startsWith("Kafka Streams"))?.recordsPerSecond ?? NaN;
  console.log(
    `\nstreaming: ${fmt(EVENTS)} events, ${fmt(SERVICES)} services, ${PARTITIONS} partitions, exactly once; records/s = events / (first input record consumed -> last window read with read_committed)`,
  );
  printTable(
    [
      "engine",
      "records/s",
      "vs Kafka Streams",
      "job s",
      "start-up s",
      "wall s",
      "CPU s",
      "RSS peak MB",
      "tumbling",
      "sliding",
      "history B/record",
      "changelog B/record",
    ],
    rows.map((r) => [
      r.engine,
      fmt(r.recordsPerSecond),
      Number.isFinite(streams) ? `${(r.recordsPerSecond / streams).toFixed(2)}x` : "-",
      fmt(r.jobMs / 1000, 1),
      fmt(r.startupMs / 1000, 1),
      fmt(r.wallMs / 1000, 1),
      fmt(r.cpuMs / 1000, 1),
      fmt(r.rssPeakMb),
      r.tumbling,
      r.sliding,
      r.historyBytesPerRecord === undefined ? "-" : fmt(r.historyBytesPerRecord, 1),
      r.changelogBytesPerRecord === undefined ? "-" : fmt(r.changelogBytesPerRecord, 1),
    ]),
  );
  for (const sage of rows.filter((r) => r.engine.startsWith("Sage"))) {
    if (!Number.isFinite(streams)) break;
    console.log(
      `${sage.engine}: target >= 50% of Kafka Streams' records/s: ${sage.recordsPerSecond >= 0.5 * streams ? "met" : "NOT met"} (${(sage.recordsPerSecond / streams).toFixed(2)}x)`,
    );
  }
  // The windows themselves stay out of the saved JSON (40 MB per engine at 1M events): they were compared above.
  results.streaming = rows.map((r) => ({ ...r, results: undefined }));
}

/**
 * The restart of a worker with SERVICES keys in state: per backend a fresh process with no local
 * copy (a cold restore from the changelog), and for the embedded backend also a process restarted
 * on the same state.dir (local recovery).
 */
async function restore(cluster: SageClusterOptions): Promise<void> {
  const cases = BACKENDS.flatMap((backend): Array<{ backend: "memory" | "embedded"; sameDisk: boolean }> =>
    backend === "embedded"
      ? [
          { backend, sameDisk: false },
          { backend, sameDisk: true },
        ]
      : [{ backend, sameDisk: false }],
  );
  const rows: string[][] = [];
  const measured: Record<string, unknown> = {};
  for (const { backend, sameDisk } of cases) {
    const label = `${backend}, ${sameDisk ? "same disk" : "fresh worker"}`;
    console.log(`\nrestore (${label}): ${fmt(SERVICES)} keys`);
    try {
      const r = await measureRestore({ ...cluster, backend, sameDisk, keys: SERVICES, seed: SEED });
      for (const x of r.restores)
        rows.push([label, `${x.changelog.split(".").slice(-2, -1)[0]}[${x.partition}]`, x.recovery ?? "rebuilt", fmt(x.entries ?? 0), fmt(x.ms)]);
      console.log(
        `restore (${label}): ${fmt(r.keys)} keys (${fmt(r.events)} events in open windows); ${r.restores.length} partitions opened (workflows counted ${r.counted} restores), ` +
          `slowest ${fmt(Math.max(...r.restores.map((x) => x.ms)))} ms; changelog ${fmt(r.changelog.bytes)} B on disk in ${fmt(r.changelog.offsets)} offsets`,
      );
      if (r.restores.length === 0) failures.push(`restore (${label}): the fresh worker logged no restore`);
      if (sameDisk && r.restores.some((x) => x.recovery !== "current" && x.recovery !== "tail"))
        failures.push(`restore (${label}): a store was rebuilt, not recovered locally`);
      measured[label] = r;
    } catch (err) {
      console.log(`  restore FAILED: ${(err as Error).stack ?? String(err)}`);
      failures.push(`restore (${label}) did not complete: ${(err as Error).message.split("\n")[0]}`);
    }
  }
  printTable(["backend, restart", "changelog partition", "how", "entries", "ms"], rows);
  results.restore = BACKENDS.length === 1 && BACKENDS[0] === "memory" ? measured["memory, fresh worker"] : measured;
}

/** Writes the events as JSON Lines (no flush events). */
async function writeJsonl(path: string, events: StatefulEvent[]): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < events.length; i += 10_000) {
    const chunk =
      events
        .slice(i, i + 10_000)
        .map((e) => JSON.stringify(e))
        .join("\n") + "\n";
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

/** The bounded variant against the plain reference function, in memory and from the file. */
async function bounded(server: DevServer, events: StatefulEvent[], reference: WindowResults, plainMs: number, dir: string): Promise<void> {
  const input = join(dir, "stateful-events.jsonl");
  await writeJsonl(input, events);
  const t = performance.now();
  const parsed = readFileSync(input, "utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as StatefulEvent);
  referenceWindows(parsed);
  const fileMs = performance.now() - t;
  console.log(`\nbounded: ${fmt(EVENTS)} events from a JSON Lines file, parallelism ${PARALLELISM}`);
  const rows: string[][] = [
    ["plain TS reference function, events in memory", fmt(plainMs / 1000, 2), fmt(EVENTS / (plainMs / 1000)), "-"],
    ["plain TS: read + parse the file, reference function", fmt(fileMs / 1000, 2), fmt(EVENTS / (fileMs / 1000)), "-"],
  ];
  try {
    const r = await runSageBounded(server, { input, dir, parallelism: PARALLELISM });
    const verdicts = check("sage bounded", reference, r.results);
    rows.push([
      "Sage bounded job, 1 worker (durable)",
      fmt(r.run.seconds, 2),
      fmt(EVENTS / r.run.seconds),
      `${verdicts.tumbling} / ${verdicts.sliding}; ${r.run.result.activities} activities, history ${fmt(r.run.history.bytes)} B`,
    ]);
    results.bounded = { plainMs, fileMs, sage: { seconds: r.run.seconds, history: r.run.history, activities: r.run.result.activities, cpu: r.run.cpu } };
  } catch (err) {
    console.log(`  sage bounded FAILED: ${(err as Error).stack ?? String(err)}`);
    failures.push(`sage bounded did not complete: ${(err as Error).message.split("\n")[0]}`);
  }
  printTable(["case", "s", "records/s", "windows"], rows);
}

async function main(): Promise<void> {
  console.log(`stateful: ${fmt(EVENTS)} events, ${fmt(SERVICES)} services, seed ${SEED}, parallelism ${PARALLELISM}; ${machineLine()}`);
  const peers = ENGINES.filter((e): e is PeerName => e === "kafka-streams" || e === "flink");
  if (PARTS.includes("streaming") && peers.length > 0) buildPeers(peers);
  const dir = mkdtempSync(join(tmpdir(), "sage-bench-stateful-"));
  let server: DevServer | null = null;
  let broker: Broker | null = null;
  try {
    server = await startScratchServer(dir);
    broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
    const cluster: SageClusterOptions = {
      server,
      brokers: broker.address,
      brokerDataDir: join(dir, "kafka"),
      parallelism: PARALLELISM,
      dir,
      log: (l) => console.log(`  ${l}`),
    };
    const events = generateEvents({ events: EVENTS, services: SERVICES, seed: SEED });
    const t = performance.now();
    const reference = referenceWindows(events);
    const plainMs = performance.now() - t;
    console.log(
      `reference: ${fmt(reference.tumbling.length)} tumbling, ${fmt(reference.sliding.length)} sliding windows; largest lateness ${maxLatenessMs(events, PARTITIONS)} ms`,
    );
    if (PARTS.includes("streaming")) await streaming(cluster, events, reference, dir);
    if (PARTS.includes("restore") && ENGINES.includes("sage")) await restore(cluster);
    if (PARTS.includes("bounded") && ENGINES.includes("sage")) await bounded(server, events, reference, plainMs, dir);
  } finally {
    broker?.stop();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (!SMOKE && failures.length === 0)
    console.log(
      `\nsaved ${saveResult(BACKENDS.includes("embedded") ? "stateful-backends" : "stateful", { events: EVENTS, services: SERVICES, seed: SEED, parallelism: PARALLELISM, partitions: PARTITIONS, ...results })}`,
    );
  if (failures.length > 0) {
    console.log(`\nstateful: FAILED:\n  ${failures.join("\n  ")}`);
    process.exit(1);
  }
}

await main();
process.exit(0);
