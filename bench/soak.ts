/**
 * Soak: the Kafka -> Kafka exactly-once job at a steady rate for a long time, with the worker and
 * the shim as separate `sage` processes so each one's resident memory can be watched. Prints RSS
 * samples and whether each process stayed flat (within 10% of its level after warm-up), plus
 * records in and out. Not part of CI: `npx tsx bench/soak.ts [--minutes 20] [--rate 1000]`.
 *
 * `--bounded [--threads 2] [--records 200000]`: the bounded job instead, run again and again on one
 * `sage worker` whose stage threads do the work, with that process's RSS (its threads included)
 * watched the same way and every run's output counted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { SageClient } from "../client/sage-client.js";
import { StreamJobHandle } from "../streaming/stream-job.js";
import { loadConfig } from "../client/config-loader.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { machineLine, printTable, saveResult } from "./machine.js";
import { ensureEvents } from "./bounded/events.js";
import boundedPipeline from "./bounded/pipeline.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const MINUTES = Number(arg("minutes", "20"));
const RATE = Number(arg("rate", "1000"));
const WORKFLOWS = 2;
const SAMPLE_MS = Math.max(2_000, Math.min(10_000, (MINUTES * 60_000) / 60));
const PAD = "x".repeat(120);

function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** How one process's RSS went after warm-up. */
interface Flatness {
  afterWarmUpMb: number;
  lastMb: number;
  maxMb: number;
  growth: number;
  flat: boolean;
}

/**
 * Flat = no upward trend: the median of the last third of the samples after warm-up (the first
 * quarter, at most 2 minutes) against the median of the first third (single samples swing with
 * garbage collection).
 */
function flatness(samples: Array<{ minute: number; mb: number }>): Flatness {
  const warm = samples.filter((s) => s.minute >= Math.min(2, MINUTES / 4));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const third = Math.max(1, Math.floor(warm.length / 3));
  const first = median(warm.slice(0, third).map((s) => s.mb));
  const last = median(warm.slice(-third).map((s) => s.mb));
  return { afterWarmUpMb: first, lastMb: last, maxMb: Math.max(...warm.map((s) => s.mb)), growth: last / first - 1, flat: last <= first * 1.1 };
}

/** A `sage` child; if it exits before the soak stops it, says so with the end of its stderr (the soak would show 0 MiB). */
function sage(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [resolve("bin/sage.js"), ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let tail = "";
  child.stderr?.on("data", (d: Buffer) => (tail = (tail + d.toString()).slice(-4_000)));
  child.once("exit", (code, signal) => {
    if (code !== 0 && signal !== "SIGTERM") console.log(`sage ${args[0]} exited (${code ?? signal}) before the soak stopped it:\n${tail}`);
  });
  return child;
}

async function main(): Promise<void> {
  console.log(`soak: ${RATE} records/s for ${MINUTES} min through ${WORKFLOWS} partition workflows; ${machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), "sage-soak-"));
  const server = await startScratchServer(dir);
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
  const kafka = createKafkajsClient({ brokers: [broker.address] });
  const admin = await kafka.admin();
  await admin.ensureTopic("soak.in", 4);
  await admin.ensureTopic("soak.out", 4);
  await admin.ensureTopic("soak.dlq", 1);
  const env = {
    SAGE_TEMPORAL_ADDRESS: server.address,
    SAGE_TEMPORAL_TASK_QUEUE: "soak",
    SAGE_DATA_DIR: join(dir, "data"),
    SAGE_KAFKA_BROKERS: broker.address,
    SAGE_KAFKA_DEAD_LETTER_TOPIC: "soak.dlq",
    SAGE_EXECUTION_PARALLELISM: String(WORKFLOWS),
    SAGE_LOG_LEVEL: "warn",
    // Worker and shim each serve /metrics: on the default port the second of them would refuse to start.
    SAGE_MONITORING_PORT: "0",
    BENCH_IN: "soak.in",
    BENCH_OUT: "soak.out",
    BENCH_GROUP: "soak",
  };
  const worker = sage(["worker", "bench/kafka-pipeline.ts"], env);
  const shim = sage(["shim", "bench/kafka-pipeline.ts", "--job-id", "soak"], env);
  const client = await SageClient.connect({ config: loadConfig({ env: {}, overrides: { "temporal.address": server.address } }) });
  const job = new StreamJobHandle(
    client,
    "kafkabench",
    "soak",
    Array.from({ length: WORKFLOWS }, (_, i) => `sage/kafkabench/soak/p${i}`),
  );
  const producer = await kafka.producer();
  const samples: Array<{ minute: number; workerMb: number; shimMb: number; records: number }> = [];
  const started = Date.now();
  const end = started + MINUTES * 60_000;
  let id = 0;
  let nextSample = started + SAMPLE_MS;
  let next = Date.now();
  try {
    while (Date.now() < end) {
      const batch = Array.from({ length: Math.max(1, Math.round(RATE / 20)) }, () => {
        const n = id++;
        return { key: `k${n % 101}`, value: JSON.stringify({ id: n, key: `k${n % 101}`, sentAt: Date.now(), amount: (n * 7) % 1000, payload: PAD }) };
      });
      await producer.send("soak.in", batch);
      if (Date.now() >= nextSample) {
        nextSample += SAMPLE_MS;
        const p = await job.progress().catch(() => null);
        const s = { minute: (Date.now() - started) / 60_000, workerMb: rssKb(worker.pid!) / 1024, shimMb: rssKb(shim.pid!) / 1024, records: p?.records ?? 0 };
        samples.push(s);
        console.log(
          `${s.minute.toFixed(1)} min: worker ${s.workerMb.toFixed(0)} MiB, shim ${s.shimMb.toFixed(0)} MiB, ${s.records} records in (${id} produced)`,
        );
      }
      next += 50;
      await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    }
    await job.stop();
    const result = await job.result();
    const flat = (key: "workerMb" | "shimMb") => flatness(samples.map((x) => ({ minute: x.minute, mb: x[key] })));
    const out = {
      minutes: MINUTES,
      rate: RATE,
      produced: id,
      recordsIn: result.records,
      recordsOut: result.counts["out"]?.out ?? 0,
      worker: flat("workerMb"),
      shim: flat("shimMb"),
      samples,
    };
    printTable(
      ["process", "RSS after warm-up MiB", "max MiB", "growth", "flat within 10%"],
      (["worker", "shim"] as const).map((k) => [
        k,
        out[k].afterWarmUpMb.toFixed(0),
        out[k].maxMb.toFixed(0),
        `${(out[k].growth * 100).toFixed(1)}%`,
        String(out[k].flat),
      ]),
    );
    console.log(`records produced ${id}, through the job ${out.recordsIn}, written ${out.recordsOut}`);
    console.log(`saved ${saveResult("soak", out)}`);
  } finally {
    await producer.close();
    await admin.close();
    shim.kill("SIGTERM");
    worker.kill("SIGTERM");
    await client.close();
    broker.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bounded job again and again on one threaded worker for `--minutes`, its RSS sampled. */
async function boundedSoak(): Promise<void> {
  const threads = Number(arg("threads", "2"));
  const records = Number(arg("records", "200000"));
  console.log(`soak (bounded): ${records} events per job, one worker with ${threads} stage threads, ${MINUTES} min; ${machineLine()}`);
  const input = resolve(".sage", "bench", `events-${records}.jsonl`);
  await ensureEvents(input, records);
  const dir = mkdtempSync(join(tmpdir(), "sage-soak-bounded-"));
  const server = await startScratchServer(dir);
  const env = {
    SAGE_TEMPORAL_ADDRESS: server.address,
    SAGE_TEMPORAL_TASK_QUEUE: "soak-bounded",
    SAGE_DATA_DIR: join(dir, "data"),
    SAGE_WORKER_THREADS: String(threads),
    SAGE_MONITORING_ENABLED: "false",
    SAGE_LOG_LEVEL: "warn",
  };
  const worker = sage(["worker", "bench/bounded/pipeline.ts"], env);
  const client = await SageClient.connect({ config: loadConfig({ env, overrides: {} }) });
  const samples: Array<{ minute: number; mb: number; jobs: number }> = [];
  const started = Date.now();
  let jobs = 0;
  const outputs = new Set<number>();
  const sampler = setInterval(() => {
    const s = { minute: (Date.now() - started) / 60_000, mb: rssKb(worker.pid!) / 1024, jobs };
    samples.push(s);
    console.log(`${s.minute.toFixed(1)} min: worker ${s.mb.toFixed(0)} MiB, ${jobs} jobs done`);
  }, SAMPLE_MS);
  try {
    while (Date.now() < started + MINUTES * 60_000) {
      const output = join(dir, `out-${jobs}.jsonl`);
      const job = await client.submit(boundedPipeline, { jobId: `soak-bounded-${jobs}`, params: { input, output } });
      const result = await job.result();
      outputs.add(result.counts["out"]?.out ?? -1);
      // Every run writes the same records: a second distinct count is a lost or doubled record.
      if (outputs.size > 1) throw new Error(`job ${jobs} wrote ${result.counts["out"]?.out} records, earlier jobs ${[...outputs].join(", ")}`);
      if (statSync(output).size === 0) throw new Error(`job ${jobs} wrote an empty file`);
      rmSync(output);
      jobs++;
    }
    clearInterval(sampler);
    const worker_ = flatness(samples);
    printTable(
      ["process", "RSS after warm-up MiB", "max MiB", "growth", "flat within 10%"],
      [
        [
          "worker (stage threads included)",
          worker_.afterWarmUpMb.toFixed(0),
          worker_.maxMb.toFixed(0),
          `${(worker_.growth * 100).toFixed(1)}%`,
          String(worker_.flat),
        ],
      ],
    );
    console.log(`${jobs} jobs of ${records} events, each wrote ${[...outputs][0]} records`);
    console.log(`saved ${saveResult("soak-bounded", { minutes: MINUTES, threads, records, jobs, recordsOut: [...outputs][0], worker: worker_, samples })}`);
  } finally {
    clearInterval(sampler);
    worker.kill("SIGTERM");
    await client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await (process.argv.includes("--bounded") ? boundedSoak() : main());
process.exit(0);
