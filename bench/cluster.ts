/**
 * The Temporal side of a benchmark: a fresh dev server on free ports, worker processes started
 * with `sage worker`, a wait until they poll, and the history of a job summed over its runs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import proto from "@temporalio/proto";
import type { SageClient, SageJob } from "../client/sage-client.js";

/** Starts `n` `sage worker <pipelineFile>` processes with `env` on top of this process's (and `nodeArgs` for node, e.g. `--cpu-prof`). */
export function startWorkers(pipelineFile: string, n: number, env: Record<string, string>, nodeArgs: string[] = []): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawn(process.execPath, [...nodeArgs, resolve("bin/sage.js"), "worker", pipelineFile], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "inherit"],
    }),
  );
}

/** Stops the worker processes (SIGTERM, so they close user functions) and waits for them to exit. */
export async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      if (w.exitCode !== null) return;
      const exited = once(w, "exit");
      w.kill("SIGTERM");
      await exited;
    }),
  );
}

/** Waits until `n` distinct workers poll the task queue for activities (they bundle workflow code first), at most `timeoutMs`. */
export async function waitForPollers(client: SageClient, taskQueue: string, n: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const d = await client.connection.workflowService.describeTaskQueue({
      namespace: client.config.temporal.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    const live = new Set((d.pollers ?? []).filter((p) => Date.now() - Number(p.lastAccessTime?.seconds ?? 0) * 1000 < 5_000).map((p) => p.identity));
    if (live.size >= n) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${n} worker(s) did not start polling ${taskQueue} within ${timeoutMs / 1000} s`);
}

/** History of a finished job over all its runs (continue-as-new starts a new run with its own history). */
export interface JobHistory {
  runs: number;
  events: number;
  bytes: number;
}

/**
 * Sums events and encoded bytes over every run of a finished job. Runs are listed through
 * visibility, which lags a little; the list is complete once it holds the chain of runs that
 * the histories link (each run's first event names the run it continued).
 */
export async function jobHistory(client: SageClient, job: Pick<SageJob, "workflowId" | "runId" | "describe">): Promise<JobHistory> {
  const workflow = client.temporal.workflow;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const runIds = new Set<string>();
    for await (const w of workflow.list({ query: `WorkflowId = "${job.workflowId}"` })) runIds.add(w.runId);
    const histories = await Promise.all([...runIds].map((runId) => workflow.getHandle(job.workflowId, runId).fetchHistory()));
    const continued = histories.map((h) => h.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || null);
    const latest = (await job.describe()).runId;
    const complete = runIds.has(latest) && (job.runId === undefined || runIds.has(job.runId)) && continued.every((prev) => prev === null || runIds.has(prev));
    if (complete) {
      return {
        runs: runIds.size,
        events: histories.reduce((n, h) => n + (h.events?.length ?? 0), 0),
        bytes: histories.reduce((n, h) => n + proto.temporal.api.history.v1.History.encode(h).finish().length, 0),
      };
    }
    if (Date.now() > deadline) throw new Error(`the runs of ${job.workflowId} did not all appear in visibility within 30 s (have ${[...runIds].join(", ")})`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
