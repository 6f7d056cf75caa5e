/**
 * Case `scale`: the bounded job on 1 and then 2 worker processes, the speed-up, and which part is
 * the bottleneck, from the CPU seconds the dev server and the workers used during each run.
 * (The 1 -> 4 partition workflows part comes with the Kafka cases.)
 */
import { cpus } from "node:os";
import { boundedInput, boundedJob } from "./bounded/job.js";
import type { BenchCase, BenchContext, CaseReport } from "./case.js";
import { perSecond, ratio } from "./case.js";
import type { SageJobRun } from "./sage-job.js";

/**
 * What limited a run, from where CPU time went during it: the machine as a whole (other processes
 * included: this machine may be shared), the dev server, the workers; else round-trip latency.
 */
export function bottleneck(run: SageJobRun, workers: number, cores: number): string {
  const { server, workers: w, machine } = run.cpu;
  if (server === null || w === null || machine === null) return "unknown (no /proc)";
  const serverCores = server / run.seconds;
  const workerCores = w / run.seconds;
  const busy = machine / run.seconds;
  const others = Math.max(0, busy - serverCores - workerCores);
  const shares = `workers ${workerCores.toFixed(2)}, server ${serverCores.toFixed(2)}, everything else ${others.toFixed(2)} cores`;
  if (busy >= 0.85 * cores) return `machine CPU saturated (${busy.toFixed(2)} of ${cores} cores busy: ${shares})`;
  if (serverCores >= 0.8) return `the dev server (${shares})`;
  if (workerCores / workers >= 0.8) return `worker CPU (${(workerCores / workers).toFixed(2)} cores per worker; ${shares})`;
  return `neither CPU (${shares}): waiting on round trips`;
}

async function run(ctx: BenchContext): Promise<CaseReport> {
  const input = await boundedInput(ctx);
  const cores = cpus().length;
  const runs = [
    { workers: 1, run: await boundedJob(ctx, 1) },
    { workers: 2, run: await boundedJob(ctx, 2) },
  ];
  const base = runs[0]!.run;
  const speedup = base.seconds / runs[1]!.run.seconds;
  const cpu = (v: number | null) => (v === null ? "-" : v.toFixed(1));
  return {
    title: `scale: the bounded job (${input.records.toLocaleString("en-US")} events) on 1 and 2 worker processes`,
    columns: ["workers", "wall s", "records/s", "vs 1 worker", "worker occupancy", "server CPU s", "workers CPU s", "machine CPU s", "bottleneck"],
    rows: runs.map((r) => [
      String(r.workers),
      r.run.seconds.toFixed(2),
      perSecond(input.records, r.run.seconds),
      ratio(base.seconds, r.run.seconds),
      Object.values(r.run.timeline.occupancy)
        .map((x) => x.toFixed(2))
        .join(" / "),
      cpu(r.run.cpu.server),
      cpu(r.run.cpu.workers),
      cpu(r.run.cpu.machine),
      bottleneck(r.run, r.workers, cores),
    ]),
    chart: { unit: "records/s", bars: runs.map((r) => ({ label: `${r.workers} worker(s)`, value: input.records / r.run.seconds, durable: true })) },
    checks: runs.map((r) => ({ what: `${r.workers} worker(s): every event read`, ok: r.run.result.counts.events?.out === input.records })),
    notes: [
      "worker occupancy: share of the stage phase during which each worker ran a split (1.00 = never waited for work)",
      `1 -> 2 workers: ${speedup.toFixed(2)}x (target >= 1.7x where the server is not the bottleneck; this machine has ${cores} cores for the server, the workers and everything else)`,
    ],
    data: {
      records: input.records,
      cores,
      runs: runs.map((r) => ({
        workers: r.workers,
        seconds: r.run.seconds,
        cpu: r.run.cpu,
        timeline: r.run.timeline,
        splits: r.run.result.splitsTotal,
        settings: r.run.settings,
      })),
    },
  };
}

/** The registry entry. */
export const scaleCase: BenchCase = {
  name: "scale",
  summary: "the bounded job on 1 and 2 workers: speed-up and bottleneck (server vs worker CPU)",
  inDefaultRun: true,
  inSmoke: true,
  run,
};
