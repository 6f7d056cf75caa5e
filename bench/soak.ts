/**
 * Soak: the Kafka -> Kafka exactly-once job at a steady rate for a long time, with the worker and
 * the shim as separate `sage` processes so each one's resident memory can be watched. Prints RSS
 * samples and whether each process stayed flat (within 10% of its level after warm-up), plus
 * records in and out. Not part of CI: `npx tsx bench/soak.ts [--minutes 20] [--rate 1000]`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { SageClient } from "../client/sage-client.js";
import { StreamJobHandle } from "../streaming/stream-job.js";
import { loadConfig } from "../client/config-loader.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { machineLine, printTable, saveResult } from "./machine.js";

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

function sage(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [resolve("bin/sage.js"), ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  child.stderr?.on("data", () => undefined);
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
    const warm = samples.filter((s) => s.minute >= Math.min(2, MINUTES / 4));
    // Flat = no upward trend: the median of the last third of the samples after warm-up against the
    // median of the first third (single samples swing with garbage collection).
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const flat = (key: "workerMb" | "shimMb") => {
      const third = Math.max(1, Math.floor(warm.length / 3));
      const first = median(warm.slice(0, third).map((s) => s[key]));
      const last = median(warm.slice(-third).map((s) => s[key]));
      return { afterWarmUpMb: first, lastMb: last, maxMb: Math.max(...warm.map((s) => s[key])), growth: last / first - 1, flat: last <= first * 1.1 };
    };
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

await main();
process.exit(0);
