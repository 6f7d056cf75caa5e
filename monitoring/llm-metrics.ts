/** What a worker measures of its model calls: requests, cache hits, tokens and estimated cost per model, 429s and limiter waits, budget left. */
import { Counter, Gauge } from "prom-client";
import { METRICS } from "./names.js";
import { metricsRegistry } from "./registry.js";

const registers = [metricsRegistry];
const labelNames = ["pipeline", "job_id", "operator", "model"] as const;

const requests = new Counter({
  name: METRICS.llmRequests,
  help: "Model requests answered (from the endpoint, the cache or a recorded run)",
  labelNames: [...labelNames, "kind"],
  registers,
});
const cacheHits = new Counter({ name: METRICS.llmCacheHits, help: "Model requests answered from the cache or a recorded run", labelNames, registers });
const tokensIn = new Counter({ name: METRICS.llmTokensIn, help: "Prompt tokens the endpoint was paid for (cache hits cost none)", labelNames, registers });
const tokensOut = new Counter({ name: METRICS.llmTokensOut, help: "Completion tokens the endpoint was paid for", labelNames, registers });
const cost = new Counter({ name: METRICS.llmCost, help: "Estimated cost in USD from llm.prices (0 for a model without a price)", labelNames, registers });

const rateLimited = new Counter({ name: METRICS.llmRateLimited, help: "429 answers of the model endpoint", labelNames: ["model"], registers });
const limiterWait = new Counter({
  name: METRICS.llmLimiterWait,
  help: "Time calls waited in the per-model rate limiter (its buckets or a 429's Retry-After)",
  labelNames: ["model"],
  registers,
});
const budgetLabels = ["pipeline", "job_id", "scope", "limit"] as const;
const remainingUsd = new Gauge({
  name: METRICS.llmBudgetRemainingUsd,
  help: "USD left of an llm.budget limit (dollars-per-hour, dollars-total)",
  labelNames: budgetLabels,
  registers,
});
const remainingTokens = new Gauge({
  name: METRICS.llmBudgetRemainingTokens,
  help: "Tokens left of an llm.budget tokens-per-minute limit",
  labelNames: budgetLabels,
  registers,
});

/** One answered model call, as the usage ledger records it. */
export interface ModelAnswer {
  pipeline: string;
  jobId: string;
  operator: string;
  model: string;
  kind: "chat" | "embeddings";
  cached: boolean;
  promptTokens: number;
  completionTokens: number;
  cost: number;
}

/** Counts one answered model call. */
export function modelAnswered(a: ModelAnswer): void {
  const labels = { pipeline: a.pipeline, job_id: a.jobId, operator: a.operator, model: a.model };
  requests.inc({ ...labels, kind: a.kind });
  if (a.cached) {
    cacheHits.inc(labels);
    return;
  }
  tokensIn.inc(labels, a.promptTokens);
  tokensOut.inc(labels, a.completionTokens);
  cost.inc(labels, a.cost);
}

/** Counts one 429 of a model. */
export function modelRateLimited(model: string): void {
  rateLimited.inc({ model });
}

/** Adds a wait of the rate limiter for a model, in ms. */
export function modelWaited(model: string, ms: number): void {
  limiterWait.inc({ model }, ms / 1000);
}

/** Sets what is left of one budget limit (`job` is "" for a pipeline budget). */
export function budgetRemaining(pipeline: string, job: string, scope: "job" | "pipeline", limit: string, left: number): void {
  const gauge = limit === "tokens-per-minute" ? remainingTokens : remainingUsd;
  gauge.set({ pipeline, job_id: job, scope, limit }, left);
}
