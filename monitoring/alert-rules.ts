/**
 * The Prometheus alert rules of `sage alerts export`: the SAGE Core design's two (throughput under
 * 1000 records/s for 5 minutes is a WARNING, p99 latency over 500 ms for 2 minutes is CRITICAL)
 * plus dead letters, consumer lag, checkpoint failures and LLM spend, over the metric names of
 * `names.ts`, with the thresholds of `monitoring.alerts.*`.
 */
import { stringify } from "yaml";
import type { SageConfig } from "../core/config/schema.js";
import { METRICS } from "./names.js";

/** The thresholds (`monitoring.alerts`). */
export type AlertThresholds = SageConfig["monitoring"]["alerts"];

/** One alerting rule as Prometheus reads it. */
export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: "warning" | "critical" };
  annotations: { summary: string; description: string };
}

/** A Prometheus rules file. */
export interface RulesFile {
  groups: Array<{ name: string; rules: AlertRule[] }>;
}

/** Name of the rule group. */
export const RULE_GROUP = "sage";

/** Milliseconds as a Prometheus duration (`300000` -> `5m`, `500` -> `500ms`). */
export function promDuration(ms: number): string {
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1_000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms)}ms`;
}

/**
 * The PromQL of each measure the rules and the dashboard share; `sel` is a label selector the
 * dashboard adds (`{pipeline=~"$pipeline"}`), empty in the rules.
 */
export const QUERIES = {
  /** Records per second a streaming job reads (what its shim delivers). */
  throughput: (sel = "") => `sum by (pipeline, job_id) (rate(${METRICS.shimRecords}${sel}[1m]))`,
  /** p99 of the end-to-end latency, in seconds. */
  latencyP99: (sel = "") => `histogram_quantile(0.99, sum by (pipeline, job_id, le) (rate(${METRICS.endToEnd}_bucket${sel}[1m])))`,
  deadLetters5m: (sel = "") => `sum by (pipeline, job_id, operator) (increase(${METRICS.deadLetters}${sel}[5m]))`,
  consumerLag: (sel = "") => `sum by (pipeline, job_id) (${METRICS.consumerLag}${sel})`,
  checkpointFailures15m: (sel = "") => `sum by (pipeline, job_id) (increase(${METRICS.checkpointFailures}${sel}[15m]))`,
  llmCostPerHour: (sel = "") => `sum by (pipeline, job_id) (increase(${METRICS.llmCost}${sel}[1h]))`,
} as const;

/** The rules for these thresholds. */
export function alertRules(t: AlertThresholds): RulesFile {
  const rules: AlertRule[] = [
    {
      alert: "SageThroughputLow",
      expr: `${QUERIES.throughput()} < ${t["min-throughput"]}`,
      for: promDuration(t["throughput-for"]),
      labels: { severity: "warning" },
      annotations: {
        summary: "Streaming job {{ $labels.pipeline }}/{{ $labels.job_id }} reads {{ $value | humanize }} records/s",
        description: `Under ${t["min-throughput"]} records/s for ${promDuration(t["throughput-for"])} (monitoring.alerts.min-throughput): raise the parallelism or look for a slow operator.`,
      },
    },
    {
      alert: "SageLatencyP99High",
      expr: `${QUERIES.latencyP99()} > ${t["max-latency-p99"] / 1000}`,
      for: promDuration(t["latency-for"]),
      labels: { severity: "critical" },
      annotations: {
        summary: "p99 end-to-end latency of {{ $labels.pipeline }}/{{ $labels.job_id }} is {{ $value | humanizeDuration }}",
        description: `Over ${promDuration(t["max-latency-p99"])} for ${promDuration(t["latency-for"])} (monitoring.alerts.max-latency-p99): look at batch latency per stage and at backpressure.`,
      },
    },
    {
      alert: "SageDeadLetters",
      expr: `${QUERIES.deadLetters5m()} > ${t["max-dead-letters"]}`,
      labels: { severity: "warning" },
      annotations: {
        summary:
          "Operator {{ $labels.operator }} of {{ $labels.pipeline }}/{{ $labels.job_id }} sent {{ $value | humanize }} records to the dead letters in 5 minutes",
        description: `More than ${t["max-dead-letters"]} in 5 minutes (monitoring.alerts.max-dead-letters): \`sage dlq list\` shows them by operator and error.`,
      },
    },
    {
      alert: "SageConsumerLagHigh",
      expr: `${QUERIES.consumerLag()} > ${t["max-consumer-lag"]}`,
      for: promDuration(t["consumer-lag-for"]),
      labels: { severity: "warning" },
      annotations: {
        summary: "{{ $labels.pipeline }}/{{ $labels.job_id }} is {{ $value | humanize }} records behind its topics",
        description: `Over ${t["max-consumer-lag"]} records for ${promDuration(t["consumer-lag-for"])} (monitoring.alerts.max-consumer-lag): the job does not keep up with its input.`,
      },
    },
    {
      alert: "SageCheckpointFailures",
      expr: `${QUERIES.checkpointFailures15m()} > ${t["max-checkpoint-failures"]}`,
      labels: { severity: "critical" },
      annotations: {
        summary: "{{ $value | humanize }} checkpoints of {{ $labels.pipeline }}/{{ $labels.job_id }} failed in 15 minutes",
        description: `More than ${t["max-checkpoint-failures"]} in 15 minutes (monitoring.alerts.max-checkpoint-failures): a partition workflow's run did not close while the shim held its batches.`,
      },
    },
    {
      alert: "SageLlmSpendHigh",
      expr: `${QUERIES.llmCostPerHour()} > ${t["max-llm-cost-per-hour"]}`,
      labels: { severity: "warning" },
      annotations: {
        summary: "{{ $labels.pipeline }}/{{ $labels.job_id }} spent an estimated {{ $value | humanize }} USD on models in the last hour",
        description: `Over ${t["max-llm-cost-per-hour"]} USD per hour (monitoring.alerts.max-llm-cost-per-hour), estimated from llm.prices.`,
      },
    },
  ];
  return { groups: [{ name: RULE_GROUP, rules }] };
}

/** The rules file as YAML, with a header saying where it came from. */
export function alertRulesYaml(t: AlertThresholds): string {
  const header = "# Sage alert rules (`sage alerts export`); thresholds from monitoring.alerts.* of the Sage config.\n";
  return header + stringify(alertRules(t), { lineWidth: 0 });
}
