/**
 * Scale-out on paper: where the CPU of the Kafka -> Kafka exactly-once job goes, per process, per
 * million records, and what that projects for machines with more cores (issue 19). The input is
 * produced first; then the worker and the shim start as separate `sage` processes and drain it at
 * full speed while the CPU seconds of the dev server, the worker, the shim and the broker are read
 * from /proc. Not part of CI:
 *
 *   npx tsx bench/scale-out.ts [--records 400000] [--workflows 4] [--cores 4,8,16]
 *                              [--worker-client kafkajs|confluent] [--shim-client kafkajs|confluent]
 *
 * `--worker-client` and `--shim-client` set `kafka.client` of each process (default kafkajs): the
 * worker's client writes the transactions, the shim's reads the source.
 *
 * The projection assumes every process but the shim can be replicated (more workers, server
 * services and brokers on more machines) and that the job's CPU cost per record stays what it was
 * here; the shim is one process per job on one JavaScript thread, so it caps a job at one core.
 */
import type { ChildProcess } from "node:child_process";
import { startSage, whenLogged } from "./sage-process.js";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { SageClient } from "../client/sage-client.js";
import { StreamJobHandle } from "../streaming/stream-job.js";
import { loadConfig } from "../client/config-loader.js";
import { createKafkajsClient } from "../connectors/kafka/kafkajs-client.js";
import { cpuSeconds, machineBusySeconds } from "./cpu.js";
import { machineLine, printTable, saveResult } from "./machine.js";
import { PROCESSES, project, type CpuProfile, type Process } from "./projection.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const RECORDS = Number(arg("records", "400000"));
const WORKFLOWS = Number(arg("workflows", "4"));
const CORES = arg("cores", "4,8,16").split(",").map(Number);
const PAD = "x".repeat(120);
/** `kafka.client` of the worker (the transactional sink) and of the shim (the source consumer). */
const WORKER_CLIENT = arg("worker-client", "kafkajs");
const SHIM_CLIENT = arg("shim-client", "kafkajs");

/** A `sage` process at log level info (its log in the run's directory), and a promise of the first log line holding `message`. */
function sage(args: string[], env: Record<string, string>, message: string, dir: string): { child: ChildProcess; logged: Promise<void> } {
  const p = startSage(args, { ...env, SAGE_LOG_LEVEL: "info" }, join(dir, `${args[0]}.log`));
  return { child: p.child, logged: whenLogged(p, message) };
}

async function main(): Promise<void> {
  console.log(`scale-out: ${RECORDS} records through ${WORKFLOWS} partition workflows (worker on ${WORKER_CLIENT}, shim on ${SHIM_CLIENT}); ${machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), "sage-scale-out-"));
  const server = await startScratchServer(dir);
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
  const kafka = createKafkajsClient({ brokers: [broker.address] });
  const admin = await kafka.admin();
  const children: ChildProcess[] = [];
  let client: SageClient | null = null;
  try {
    await admin.ensureTopic("scale.in", 4);
    await admin.ensureTopic("scale.out", 4);
    await admin.ensureTopic("scale.dlq", 1);
    const producer = await kafka.producer();
    for (let id = 0; id < RECORDS;) {
      const batch = [];
      for (const end = Math.min(RECORDS, id + 5_000); id < end; id++) {
        batch.push({ key: `k${id % 101}`, value: JSON.stringify({ id, key: `k${id % 101}`, sentAt: Date.now(), amount: (id * 7) % 1000, payload: PAD }) });
      }
      await producer.send("scale.in", batch);
    }
    await producer.close();
    console.log(`produced ${RECORDS} records`);
    const env = {
      SAGE_TEMPORAL_ADDRESS: server.address,
      SAGE_TEMPORAL_TASK_QUEUE: "scale-out",
      SAGE_DATA_DIR: join(dir, "data"),
      SAGE_KAFKA_BROKERS: broker.address,
      SAGE_KAFKA_DEAD_LETTER_TOPIC: "scale.dlq",
      SAGE_EXECUTION_PARALLELISM: String(WORKFLOWS),
      SAGE_MONITORING_ENABLED: "false",
      BENCH_IN: "scale.in",
      BENCH_OUT: "scale.out",
      BENCH_GROUP: "scale",
    };
    const { child: worker, logged: workerStarted } = sage(
      ["worker", "bench/kafka-pipeline.ts"],
      { ...env, SAGE_KAFKA_CLIENT: WORKER_CLIENT },
      "worker started",
      dir,
    );
    children.push(worker);
    await workerStarted;
    client = await SageClient.connect({ config: loadConfig({ env: {}, overrides: { "temporal.address": server.address } }) });
    const job = new StreamJobHandle(
      client,
      "kafkabench",
      "scale",
      Array.from({ length: WORKFLOWS }, (_, i) => `sage/kafkabench/scale/p${i}`),
    );
    const pids: Record<Process, number | null> = { server: server.pid, worker: worker.pid ?? null, shim: null, broker: broker.pid() };
    const cpuNow = (): Record<Process, number> => Object.fromEntries(PROCESSES.map((p) => [p, cpuSeconds([pids[p]]) ?? NaN])) as Record<Process, number>;
    // The clock starts when the shim consumes: both processes have loaded (startup is not per record).
    const { child: shim, logged: consuming } = sage(
      ["shim", "bench/kafka-pipeline.ts", "--job-id", "scale"],
      { ...env, SAGE_KAFKA_CLIENT: SHIM_CLIENT },
      "shim consuming",
      dir,
    );
    children.push(shim);
    pids.shim = shim.pid ?? null;
    await consuming;
    const cpu0 = cpuNow();
    const machine0 = machineBusySeconds();
    const t0 = performance.now();
    let out = 0;
    let batches = 0;
    while (out < RECORDS) {
      await new Promise((r) => setTimeout(r, 500));
      if (shim.exitCode !== null || worker.exitCode !== null) throw new Error(`the ${shim.exitCode !== null ? "shim" : "worker"} exited early`);
      const p = await job.progress().catch(() => null);
      out = p?.counts["out"]?.out ?? 0;
      batches = p?.batches ?? 0;
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuNow();
    const machine1 = machineBusySeconds();
    const perMillion = Object.fromEntries(PROCESSES.map((p) => [p, ((cpu1[p] - cpu0[p]) * 1e6) / RECORDS])) as Record<Process, number>;
    const profile: CpuProfile = { perMillion, recordsPerSecond: RECORDS / seconds, machineSeconds: (machine1 ?? NaN) - (machine0 ?? NaN), seconds };
    const total = PROCESSES.reduce((s, p) => s + perMillion[p], 0);
    printTable(
      ["process", "CPU s per 1M records", "share", "cores busy during the drain"],
      PROCESSES.map((p) => [p, perMillion[p].toFixed(1), `${((perMillion[p] / total) * 100).toFixed(0)}%`, ((cpu1[p] - cpu0[p]) / seconds).toFixed(2)]),
    );
    console.log(
      `drained ${RECORDS} records in ${seconds.toFixed(1)} s: ${Math.round(profile.recordsPerSecond)} records/s; the four processes used ` +
        `${((total * RECORDS) / 1e6 / seconds).toFixed(2)} of ${availableParallelism()} cores, the machine ${(profile.machineSeconds / seconds).toFixed(2)}; ` +
        `${batches} batch signals (${Math.round(RECORDS / Math.max(1, batches))} records each), ${(batches / WORKFLOWS / seconds).toFixed(1)} per workflow per s`,
    );
    const here = project(profile, availableParallelism());
    const projections = CORES.map((c) => project(profile, c));
    printTable(
      ["cores", "projected records/s", "what caps it"],
      [here, ...projections].map((p) => [String(p.cores), String(Math.round(p.recordsPerSecond)), p.bottleneck]),
    );
    console.log(`(the ${here.cores}-core row is the model at this machine's size, against the ${Math.round(profile.recordsPerSecond)} records/s measured)`);
    console.log(
      `saved ${saveResult("scale-out", { records: RECORDS, workflows: WORKFLOWS, workerClient: WORKER_CLIENT, shimClient: SHIM_CLIENT, batches, profile, projections, here })}`,
    );
    await job.stop();
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await client?.close();
    await admin.close();
    broker.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
