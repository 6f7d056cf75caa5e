/**
 * What a streaming test prints when it gives up waiting on its job: each partition workflow's
 * status, its progress, and its pending activities with their attempt and last failure; and the last
 * warnings and errors in each worker's JSON log. CI keeps only a failed file's last non-JSON lines,
 * so without this a stall says nothing but "gave up waiting".
 */
import type { SageClient } from "../../client/sage-client.js";
import type { StreamJobProgress } from "../../streaming/stream-job.js";
import { streamProgressQuery } from "../../workflows/contract.js";
import type { WorkerProcess } from "./harness.js";

/** Most warning and error lines reported per worker. */
const LOG_LINES = 15;

/** One line per workflow and pending activity. */
async function workflowLines(client: SageClient, workflowId: string): Promise<string[]> {
  try {
    const handle = client.temporal.workflow.getHandle(workflowId);
    const d = await handle.describe();
    const lines = [`workflow ${workflowId}: ${d.status.name}, run ${d.runId}, history ${d.historyLength} events`];
    const progress = await handle.query(streamProgressQuery).catch((err: unknown) => err as Error);
    lines.push(
      progress instanceof Error
        ? `  progress query failed: ${progress.message}`
        : `  progress: ${progress.batches} batches, ${progress.records} records, ${progress.pending} pending, run ${progress.runs}; counts ${JSON.stringify(progress.counts).slice(0, 300)}` +
            (progress.watermarks ? `; watermarks ${JSON.stringify(progress.watermarks).slice(0, 200)}` : "") +
            `; next offsets ${JSON.stringify(progress.next).slice(0, 300)}`,
    );
    for (const a of d.raw.pendingActivities ?? []) {
      const failure = a.lastFailure?.message ? `; last failure: ${a.lastFailure.message.slice(0, 300)}` : "";
      lines.push(
        `  pending ${a.activityType?.name ?? "?"} on ${a.lastWorkerIdentity || "no worker yet"}: attempt ${a.attempt ?? 0}, state ${String(a.state)}${failure}`,
      );
    }
    return lines;
  } catch (err) {
    return [`workflow ${workflowId}: describe failed: ${(err as Error).message}`];
  }
}

/** A worker's last warnings and errors, as `level msg (err)` lines. */
export function logWarnings(log: string, n = LOG_LINES): string[] {
  const out: string[] = [];
  for (const line of log.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
      if ((entry.level ?? 0) < 40) continue;
      const err = entry.err === undefined ? "" : ` (${(typeof entry.err === "string" ? entry.err : JSON.stringify(entry.err)).slice(0, 300)})`;
      out.push(`${entry.level! >= 50 ? "error" : "warn"} ${entry.msg ?? ""}${err}`);
    } catch {
      // a line cut short
    }
  }
  return out.slice(-n);
}

/** The report's lines (never throws: it runs on the way out of a failed test). */
export async function stallReport(
  client: SageClient,
  job: { workflowIds: readonly string[]; progress(): Promise<StreamJobProgress> },
  workers: readonly WorkerProcess[],
): Promise<string[]> {
  const lines: string[] = ["stall report:"];
  for (const id of job.workflowIds) lines.push(...(await workflowLines(client, id)));
  for (const w of workers) {
    const alive = w.child.exitCode === null && w.child.signalCode === null;
    lines.push(`worker ${w.identity} (${alive ? "running" : `exited: ${w.child.signalCode ?? w.child.exitCode}`}), its last warnings and errors:`);
    lines.push(...logWarnings(w.log()).map((l) => `  ${l}`));
  }
  return lines;
}
