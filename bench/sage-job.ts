/**
 * One durable job of a benchmark on the run's dev server: fresh `sage worker` processes on their own
 * task queue, a wait until they poll, the job submitted and timed from submit to result, then the
 * job's history and the CPU seconds the server and the workers spent during it.
 */
import type { DevServer } from "../dev/temporal-server.js";
import { loadConfig } from "../client/config-loader.js";
import { SageClient } from "../client/sage-client.js";
import type { Pipeline } from "../core/api/pipeline.js";
import type { JobResult } from "../core/plan/job.js";
import { jobHistory, startWorkers, stopWorkers, waitForPollers, type JobHistory } from "./cluster.js";
import { cpuSeconds, machineBusySeconds } from "./cpu.js";
import { jobTimeline, type JobTimeline } from "./timeline.js";

/** How to run the job. */
export interface SageJobSpec {
  pipeline: Pipeline;
  /** Module the workers load (`sage worker <file>`). */
  pipelineFile: string;
  params: Record<string, string>;
  workers: number;
  /** `SAGE_*` settings for client and workers (split size, parallelism, worker slots, ...). */
  settings?: Record<string, string>;
  /** Scratch directory for the workers' data dir. */
  dir: string;
  label: string;
}

/** What one job measured. */
export interface SageJobRun {
  seconds: number;
  result: JobResult;
  history: JobHistory;
  /** CPU seconds during the job: the dev server's, the workers', the whole machine's (null off Linux). */
  cpu: { server: number | null; workers: number | null; machine: number | null };
  settings: Record<string, string>;
  /** Where the time went (from the history of the job's last run). */
  timeline: JobTimeline;
}

let queues = 0;

/** `SAGE_BENCH_PROFILE_DIR=<dir>`: workers write V8 CPU profiles there (`node --cpu-prof`), to see where a job's time goes. */
function profileArgs(): string[] {
  const dir = process.env.SAGE_BENCH_PROFILE_DIR;
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/** Runs `spec` once on `server` and stops its workers. */
export async function runSageJob(server: DevServer, spec: SageJobSpec): Promise<SageJobRun> {
  const taskQueue = `bench-${spec.pipeline.name}-${process.pid}-${++queues}`;
  const settings = { SAGE_LOG_LEVEL: "warn", ...spec.settings };
  const env = { ...settings, SAGE_TEMPORAL_ADDRESS: server.address, SAGE_DATA_DIR: `${spec.dir}/data`, SAGE_TEMPORAL_TASK_QUEUE: taskQueue };
  const config = loadConfig({ env, overrides: {} });
  const procs = startWorkers(spec.pipelineFile, spec.workers, env, profileArgs());
  const client = await SageClient.connect({ config });
  try {
    await waitForPollers(client, taskQueue, spec.workers);
    const pids = procs.map((p) => p.pid);
    const cpu0 = { server: cpuSeconds([server.pid]), workers: cpuSeconds(pids), machine: machineBusySeconds() };
    const t = performance.now();
    const job = await client.submit(spec.pipeline, { jobId: `${spec.label.replace(/[^A-Za-z0-9_.-]/g, "-")}-${Date.now()}`, params: spec.params });
    const result = await job.result();
    const seconds = (performance.now() - t) / 1000;
    const cpu1 = { server: cpuSeconds([server.pid]), workers: cpuSeconds(pids), machine: machineBusySeconds() };
    const history = await jobHistory(client, job);
    const timeline = jobTimeline(await client.temporal.workflow.getHandle(job.workflowId).fetchHistory());
    const delta = (a: number | null, b: number | null) => (a === null || b === null ? null : b - a);
    return {
      seconds,
      result,
      history,
      cpu: { server: delta(cpu0.server, cpu1.server), workers: delta(cpu0.workers, cpu1.workers), machine: delta(cpu0.machine, cpu1.machine) },
      settings,
      timeline,
    };
  } finally {
    await client.close();
    await stopWorkers(procs);
  }
}
