/**
 * Token usage and estimated cost per operator and per job: every model call of a job appends one
 * line to `<data-dir>/llm/usage/<pipeline>/<job>.jsonl` (cache hits too, marked, at no cost);
 * `sage status <job>` sums them.
 */
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { jobFileName } from "../../core/names.js";

/** One model call as the ledger keeps it. */
export interface UsageLine {
  operator: string;
  model: string;
  kind: "chat" | "embeddings";
  /** Inputs in the request (texts for embeddings, 1 for chat). */
  inputs: number;
  promptTokens: number;
  completionTokens: number;
  /** Answered from the cache or the record: no model call, no cost. */
  cached: boolean;
  /** Estimated cost in USD (0 when cached or the model has no price in `llm.prices`). */
  cost: number;
}

/** Usage summed over an operator (or a job). */
export interface UsageTotals {
  requests: number;
  cached: number;
  inputs: number;
  promptTokens: number;
  completionTokens: number;
  cost: number;
  models: string[];
}

/** Where a job's usage lines are. */
export function usagePath(dataDir: string, pipeline: string, jobId: string): string {
  return join(dataDir, "llm", "usage", pipeline, `${jobFileName(jobId)}.jsonl`);
}

/** Appends one call to its job's ledger. */
export async function appendUsage(dataDir: string, pipeline: string, jobId: string, line: UsageLine): Promise<void> {
  const path = usagePath(dataDir, pipeline, jobId);
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, `${JSON.stringify(line)}\n`);
}

/** Usage of a job by operator, plus the job's total (null when the job made no model calls here). */
export async function readUsage(
  dataDir: string,
  pipeline: string,
  jobId: string,
): Promise<{ operators: Record<string, UsageTotals>; total: UsageTotals } | null> {
  const text = await readFile(usagePath(dataDir, pipeline, jobId), "utf8").catch(() => null);
  if (text === null) return null;
  const empty = (): UsageTotals => ({ requests: 0, cached: 0, inputs: 0, promptTokens: 0, completionTokens: 0, cost: 0, models: [] });
  const operators: Record<string, UsageTotals> = {};
  const total = empty();
  for (const l of text.split("\n")) {
    if (l === "") continue;
    const u = JSON.parse(l) as UsageLine;
    for (const t of [(operators[u.operator] ??= empty()), total]) {
      t.requests++;
      if (u.cached) t.cached++;
      t.inputs += u.inputs;
      // Cached answers cost nothing: only tokens the endpoint was paid for are counted.
      if (!u.cached) {
        t.promptTokens += u.promptTokens;
        t.completionTokens += u.completionTokens;
        t.cost += u.cost;
      }
      if (!t.models.includes(u.model)) t.models.push(u.model);
    }
  }
  return { operators, total };
}
