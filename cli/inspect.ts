/** `sage plan`, `sage status`, `sage stop`. */
import { renderDot, renderMermaid, renderText } from "../core/plan/render.js";
import type { JobResult } from "../core/plan/job.js";
import { resolve } from "node:path";
import { readUsage, type UsageTotals } from "../connectors/llm/usage-ledger.js";
import { loadPipeline } from "./module-loader.js";
import { SageClient } from "../client/sage-client.js";
import { configFrom, uiLink, type GlobalFlags } from "./common.js";
import { renderStreamProgress, stopStreaming, streamingStatus } from "./stream.js";
import { savepointCommand, type SavepointFlags } from "./savepoint.js";
import { UsageError } from "../core/errors.js";

interface PlanFlags extends GlobalFlags {
  format: "text" | "mermaid" | "dot" | "json";
  pipeline?: string;
}

/** Prints the plan in the chosen format. */
export async function planCommand(modulePath: string, flags: PlanFlags): Promise<void> {
  const config = configFrom(flags);
  const pipeline = await loadPipeline(modulePath, flags.pipeline);
  const { plan } = pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion });
  const text =
    flags.format === "json"
      ? JSON.stringify(plan, null, 2)
      : flags.format === "mermaid"
        ? renderMermaid(plan)
        : flags.format === "dot"
          ? renderDot(plan)
          : renderText(plan);
  process.stdout.write(`${text}\n`);
}

interface StatusFlags extends GlobalFlags {
  pipeline?: string;
  json?: boolean;
}

/** Lists jobs, or shows one job's status with progress (running) or result (completed). */
export async function statusCommand(jobId: string | undefined, flags: StatusFlags): Promise<void> {
  const config = configFrom(flags);
  const client = await SageClient.connect({ config });
  try {
    if (!jobId) {
      const jobs = await client.list(flags.pipeline ? { pipeline: flags.pipeline } : {});
      if (flags.json) process.stdout.write(`${JSON.stringify(jobs)}\n`);
      else if (jobs.length === 0) process.stdout.write("no jobs\n");
      else for (const j of jobs) process.stdout.write(`${j.status.padEnd(11)} ${j.startTime.toISOString()}  ${j.workflowId}\n`);
      return;
    }
    const streaming = await streamingStatus(client, jobId);
    if (streaming) {
      if (flags.json) process.stdout.write(`${JSON.stringify(streaming)}\n`);
      else
        for (const s of streaming)
          process.stdout.write(`streaming job ${s.jobId}: RUNNING (${s.workflowIds.join(", ")})\n${renderStreamProgress(s.progress)}\n`);
      return;
    }
    const job = await client.job(jobId);
    const desc = await job.describe();
    const status = desc.status.name;
    let detail: unknown = null;
    if (status === "RUNNING") detail = await job.progress().catch(() => null);
    else if (status === "COMPLETED") detail = (await job.handle.result()) as JobResult;
    else detail = await job.result().catch((err: unknown) => ({ error: (err as Error).message }));
    // Model usage is kept by the workers under the data dir (same machine, same data dir).
    const llm = await readUsage(resolve(config["data-dir"]), job.pipeline, job.jobId);
    const out = {
      workflowId: job.workflowId,
      runId: desc.runId,
      status,
      startTime: desc.startTime,
      closeTime: desc.closeTime,
      detail,
      llm,
      webUi: uiLink(config, { workflowId: job.workflowId, runId: desc.runId }),
    };
    process.stdout.write(flags.json ? `${JSON.stringify(out)}\n` : `${formatStatus(out)}\n`);
  } finally {
    await client.close();
  }
}

function formatUsage(name: string, u: UsageTotals): string {
  return `  ${name}: ${u.requests} model request(s) (${u.cached} from cache), ${u.inputs} input(s), tokens ${u.promptTokens} in / ${u.completionTokens} out, est. cost $${u.cost.toFixed(6)} [${u.models.join(", ")}]`;
}

function formatStatus(s: { workflowId: string; status: string; detail: unknown; llm: Awaited<ReturnType<typeof readUsage>>; webUi: string | null }): string {
  const lines = [`${s.workflowId}: ${s.status}`];
  const d = s.detail as (Partial<JobResult> & { error?: string }) | null;
  if (d?.error) lines.push(`error: ${d.error}`);
  if (d?.splitsTotal !== undefined) lines.push(`splits ${d.splitsDone}/${d.splitsTotal}, dead letters ${d.deadLetters}, phase ${d.phase}`);
  const pause = d?.llmBudgetPause;
  if (pause) lines.push(`paused by llm budget until ${pause.until} (${pause.units} stage unit(s) waiting): ${pause.reason}`);
  for (const [op, c] of Object.entries(d?.counts ?? {})) lines.push(`  ${op}: in ${c.in}, out ${c.out}, dead ${c.dead}`);
  if (s.llm) {
    lines.push("model usage (paid tokens; cached answers cost nothing):");
    for (const [op, u] of Object.entries(s.llm.operators)) lines.push(formatUsage(op, u));
    lines.push(formatUsage("job total", s.llm.total));
  }
  if (s.webUi) lines.push(`Web UI: ${s.webUi}`);
  return lines.join("\n");
}

/** Stops a streaming job cleanly (by pipeline or job id), or cancels a bounded job; `--savepoint` stops a streaming job under a savepoint. */
export async function stopCommand(jobId: string, flags: SavepointFlags & { savepoint?: boolean }): Promise<void> {
  if (flags.savepoint) return savepointCommand(jobId, { ...flags, stop: true });
  if (flags.dir) throw new UsageError("--dir is where --savepoint writes; add --savepoint");
  const config = configFrom(flags);
  const client = await SageClient.connect({ config });
  try {
    if (await stopStreaming(client, jobId, (m) => process.stdout.write(`${m}\n`))) return;
    const job = await client.job(jobId);
    await job.cancel();
    process.stdout.write(`cancellation requested for ${job.workflowId}\n`);
  } finally {
    await client.close();
  }
}
