/** What a worker measures of its model calls: requests, cache hits, tokens and estimated cost per model. */
import { Counter } from "prom-client";
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
