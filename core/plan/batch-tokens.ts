/**
 * Micro-batches sized by estimated tokens: in a pipeline whose LLM operators run under a
 * tokens-per-minute limit (`llm.budget.*.tokens-per-minute`, `llm.tokens-per-minute`,
 * `llm.limits.<model>`), the shim and the bounded split lister cut batches so that a batch's
 * estimated tokens fit the smallest of those windows, besides the record and byte caps. Then a
 * unit meets a spent window between batches, not halfway through one it must run again. A record's
 * estimate is its bytes at the initial characters-per-token ratio, once per model call it passes,
 * plus the answer tokens its chat calls may add: the worst case the budget admits a call by. A
 * pipeline without LLM operators or without such a limit has no token sizing (null): its batches
 * are cut as before.
 */
import type { SageConfig } from "../config/schema.js";
import { modelCallOf } from "../api/llm.js";

/** Characters per token assumed for a model before its endpoint reported any usage (and for batch sizing). */
export const INITIAL_CHARS_PER_TOKEN = 4;

/** How a pipeline's micro-batches are sized by tokens. */
export interface BatchTokens {
  /** Most estimated tokens in one batch: the smallest tokens-per-minute limit on the pipeline's model calls. */
  maxTokens: number;
  /** Model calls a record passes through (each sees about the record's text). */
  calls: number;
  /** Answer tokens a record's chat calls may add (their `max_tokens`). */
  answerTokens: number;
}

/** The token sizing of a pipeline's batches from its operator functions (by operator id), or null when none applies. */
export function batchTokensOf(functions: ReadonlyMap<string, unknown>, llm: SageConfig["llm"]): BatchTokens | null {
  const limits = [llm.budget.job["tokens-per-minute"], llm.budget.pipeline["tokens-per-minute"]];
  let calls = 0;
  let answerTokens = 0;
  for (const [operatorId, fn] of functions) {
    const call = modelCallOf(fn);
    if (!call) continue;
    calls++;
    answerTokens += call.answerTokens;
    const model = call.model ?? llm.models[operatorId] ?? (call.kind === "chat" ? llm["chat-model"] : llm["embedding-model"]);
    limits.push(llm.limits[model]?.["tokens-per-minute"] ?? llm["tokens-per-minute"]);
  }
  const set = limits.filter((l) => l > 0);
  if (calls === 0 || set.length === 0) return null;
  return { maxTokens: Math.min(...set), calls, answerTokens };
}

/** Estimated tokens of one record of `bytes` bytes under a sizing. */
export function recordTokens(sizing: BatchTokens, bytes: number): number {
  return sizing.calls * Math.max(1, Math.ceil(bytes / INITIAL_CHARS_PER_TOKEN)) + sizing.answerTokens;
}

/**
 * Cuts consecutive records of these byte sizes into ranges `[from, to)` of at most `caps.records`
 * records, `caps.bytes` bytes and the sizing's tokens; a record over a cap alone makes a range.
 */
export function tokenRanges(sizes: readonly number[], caps: { records: number; bytes: number }, sizing: BatchTokens): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < sizes.length;) {
    let j = i;
    let bytes = 0;
    let tokens = 0;
    while (j < sizes.length && j - i < caps.records) {
      const size = sizes[j]!;
      const t = recordTokens(sizing, size);
      if (j > i && (bytes + size > caps.bytes || tokens + t > sizing.maxTokens)) break;
      bytes += size;
      tokens += t;
      j++;
    }
    out.push([i, j]);
    i = j;
  }
  return out;
}
