/**
 * The Grafana dashboard of `sage dashboard export`: one row of panels per concern (throughput,
 * latency, errors, lag, checkpoints and state, LLM, process, Temporal SDK) over the metric names
 * of `names.ts`, filtered by pipeline and job, with the alert thresholds drawn on their panels.
 */
import { QUERIES, type AlertThresholds } from "./alert-rules.js";
import { METRICS, PROCESS_PREFIX } from "./names.js";

/** One panel: a title, its unit and its queries (`legend` in Grafana's `{{label}}` form). */
interface PanelSpec {
  title: string;
  unit: string;
  queries: Array<{ expr: string; legend: string }>;
  /** A red line at this value (an alert threshold). */
  threshold?: number;
}

/** The dashboard's filter: the pipelines and jobs picked in its variables. */
const SEL = `{pipeline=~"$pipeline", job_id=~"$job"}`;

/** A row of panels. */
interface Row {
  row: string;
  panels: PanelSpec[];
}

/** `sum by (by) (rate(name{filter}[1m]))`. */
function rate(name: string, by: string): string {
  return `sum by (${by}) (rate(${name}${SEL}[1m]))`;
}

/** The "Throughput" row. */
function throughputRow(t: AlertThresholds): Row {
  return {
    row: "Throughput",
    panels: [
      {
        title: "Records read per second",
        unit: "rps",
        queries: [{ expr: QUERIES.throughput(SEL), legend: "{{pipeline}}/{{job_id}}" }],
        threshold: t["min-throughput"],
      },
      {
        title: "Records per second by operator",
        unit: "rps",
        queries: [
          { expr: rate(METRICS.recordsIn, "operator"), legend: "{{operator}} in" },
          { expr: rate(METRICS.recordsOut, "operator"), legend: "{{operator}} out" },
        ],
      },
      {
        title: "Bytes per second",
        unit: "Bps",
        queries: [
          { expr: rate(METRICS.shimBytes, "topic"), legend: "read {{topic}}" },
          { expr: rate(METRICS.stageBytesIn, "stage"), legend: "into {{stage}}" },
          { expr: rate(METRICS.stageBytesOut, "topic"), legend: "written {{topic}}" },
        ],
      },
    ],
  };
}

/** The "Latency" row. */
function latencyRow(t: AlertThresholds): Row {
  return {
    row: "Latency",
    panels: [
      {
        title: "End-to-end latency",
        unit: "s",
        queries: [
          { expr: QUERIES.latencyP99(SEL), legend: "p99 {{pipeline}}/{{job_id}}" },
          {
            expr: `histogram_quantile(0.5, sum by (pipeline, job_id, le) (rate(${METRICS.endToEnd}_bucket${SEL}[1m])))`,
            legend: "p50 {{pipeline}}/{{job_id}}",
          },
        ],
        threshold: t["max-latency-p99"] / 1000,
      },
      {
        title: "Batch latency p99 by stage",
        unit: "s",
        queries: [{ expr: `histogram_quantile(0.99, sum by (stage, le) (rate(${METRICS.stageDuration}_bucket${SEL}[1m])))`, legend: "{{stage}}" }],
      },
      {
        title: "Shim signal latency p99",
        unit: "s",
        queries: [{ expr: `histogram_quantile(0.99, sum by (le) (rate(${METRICS.shimSignal}_bucket${SEL}[1m])))`, legend: "p99" }],
      },
    ],
  };
}

/** The "Errors" row. */
function errorsRow(t: AlertThresholds): Row {
  return {
    row: "Errors",
    panels: [
      {
        title: "Dead letters in 5 minutes",
        unit: "short",
        queries: [{ expr: QUERIES.deadLetters5m(SEL), legend: "{{operator}}" }],
        threshold: t["max-dead-letters"],
      },
      {
        title: "Errors and retries per minute",
        unit: "short",
        queries: [
          { expr: `60 * ${rate(METRICS.operatorErrors, "operator")}`, legend: "errors {{operator}}" },
          { expr: `60 * ${rate(METRICS.operatorRetries, "operator")}`, legend: "record retries {{operator}}" },
          { expr: `60 * ${rate(METRICS.stageErrors, "stage, code")}`, legend: "stage failures {{stage}} {{code}}" },
          { expr: `60 * ${rate(METRICS.stageRetries, "stage")}`, legend: "stage retries {{stage}}" },
        ],
      },
    ],
  };
}

/** The "Lag and backpressure" row. */
function lagBackpressureRow(t: AlertThresholds): Row {
  return {
    row: "Lag and backpressure",
    panels: [
      {
        title: "Consumer lag",
        unit: "short",
        queries: [{ expr: `sum by (topic, partition) (${METRICS.consumerLag}${SEL})`, legend: "{{topic}}[{{partition}}]" }],
        threshold: t["max-consumer-lag"],
      },
      { title: "Watermark lag", unit: "s", queries: [{ expr: `max by (operator) (${METRICS.watermarkLag}${SEL})`, legend: "{{operator}}" }] },
      {
        title: "Pending batches and backpressure waits",
        unit: "short",
        queries: [
          { expr: `sum by (workflow) (${METRICS.shimPending}${SEL})`, legend: "pending {{workflow}}" },
          { expr: rate(METRICS.shimWaits, "job_id"), legend: "waits/s" },
          { expr: rate(METRICS.shimBatches, "job_id"), legend: "batches delivered/s" },
        ],
      },
    ],
  };
}

/** The "Checkpoints and state" row. */
function checkpointsStateRow(t: AlertThresholds): Row {
  return {
    row: "Checkpoints and state",
    panels: [
      {
        title: "Checkpoints",
        unit: "short",
        queries: [
          { expr: `sum by (job_id) (increase(${METRICS.checkpoints}${SEL}[5m]))`, legend: "in 5 min" },
          { expr: QUERIES.checkpointFailures15m(SEL), legend: "failed in 15 min" },
        ],
        threshold: t["max-checkpoint-failures"],
      },
      {
        title: "Checkpoint duration p99",
        unit: "s",
        queries: [{ expr: `histogram_quantile(0.99, sum by (le) (rate(${METRICS.checkpointDuration}_bucket${SEL}[5m])))`, legend: "p99 duration" }],
      },
      {
        title: "Keyed state and history size",
        unit: "bytes",
        queries: [
          { expr: `sum by (operator) (${METRICS.stateBytes}${SEL})`, legend: "{{operator}} state" },
          { expr: `sum by (workflow) (${METRICS.checkpointBytes}${SEL})`, legend: "history at checkpoint {{workflow}}" },
        ],
      },
      {
        title: "Keyed state entries and timers",
        unit: "short",
        queries: [
          { expr: `sum by (operator) (${METRICS.stateEntries}${SEL})`, legend: "{{operator}} entries" },
          { expr: `sum by (operator) (${METRICS.stateTimers}${SEL})`, legend: "{{operator}} timers" },
        ],
      },
    ],
  };
}

/** The "LLM" row. */
function llmRow(t: AlertThresholds): Row {
  return {
    row: "LLM",
    panels: [
      {
        title: "Model requests per second",
        unit: "rps",
        queries: [
          { expr: rate(METRICS.llmRequests, "model"), legend: "{{model}}" },
          { expr: rate(METRICS.llmCacheHits, "model"), legend: "{{model}} cache hits" },
        ],
      },
      {
        title: "Tokens per second",
        unit: "short",
        queries: [
          { expr: rate(METRICS.llmTokensIn, "model"), legend: "{{model}} in" },
          { expr: rate(METRICS.llmTokensOut, "model"), legend: "{{model}} out" },
        ],
      },
      {
        title: "Estimated spend per hour",
        unit: "currencyUSD",
        queries: [{ expr: `sum by (model) (increase(${METRICS.llmCost}${SEL}[1h]))`, legend: "{{model}}" }],
        threshold: t["max-llm-cost-per-hour"],
      },
      {
        // Per model and worker, not per job: a worker's limiter is shared by its jobs.
        title: "Rate limits: 429s and limiter waits per second",
        unit: "short",
        queries: [
          { expr: `sum by (model) (rate(${METRICS.llmRateLimited}[1m]))`, legend: "{{model}} 429s" },
          { expr: `sum by (model) (rate(${METRICS.llmLimiterWait}[1m]))`, legend: "{{model}} s waited" },
        ],
      },
      {
        title: "LLM budget left (USD)",
        unit: "currencyUSD",
        queries: [
          { expr: `min by (pipeline, job_id, scope, limit) (${METRICS.llmBudgetRemainingUsd}${SEL})`, legend: "{{scope}} {{pipeline}} {{job_id}} {{limit}}" },
        ],
      },
      {
        title: "LLM budget left (tokens this minute)",
        unit: "short",
        queries: [{ expr: `min by (pipeline, job_id, scope) (${METRICS.llmBudgetRemainingTokens}${SEL})`, legend: "{{scope}} {{pipeline}} {{job_id}}" }],
      },
    ],
  };
}

/** The "Processes" row. */
function processesRow(): Row {
  return {
    row: "Processes",
    panels: [
      { title: "CPU", unit: "percentunit", queries: [{ expr: `rate(${PROCESS_PREFIX}process_cpu_seconds_total[1m])`, legend: "{{instance}}" }] },
      { title: "Resident memory", unit: "bytes", queries: [{ expr: `${PROCESS_PREFIX}process_resident_memory_bytes`, legend: "{{instance}}" }] },
      {
        title: "Temporal SDK: activity and workflow slots available",
        unit: "short",
        queries: [{ expr: "sum by (instance, worker_type) (temporal_worker_task_slots_available)", legend: "{{instance}} {{worker_type}}" }],
      },
    ],
  };
}

/** Every row, in order. */
function panels(t: AlertThresholds): Row[] {
  return [throughputRow(t), latencyRow(t), errorsRow(t), lagBackpressureRow(t), checkpointsStateRow(t), llmRow(t), processesRow()];
}

/** Grafana's JSON for one time-series panel. */
function panelJson(p: PanelSpec, id: number, x: number, y: number) {
  return {
    id,
    type: "timeseries",
    title: p.title,
    datasource: { type: "prometheus", uid: "${datasource}" },
    gridPos: { x, y, w: 8, h: 8 },
    fieldConfig: {
      defaults: {
        unit: p.unit,
        ...(p.threshold !== undefined
          ? {
              thresholds: {
                mode: "absolute",
                steps: [
                  { color: "green", value: null },
                  { color: "red", value: p.threshold },
                ],
              },
              custom: { thresholdsStyle: { mode: "line" } },
            }
          : {}),
      },
      overrides: [],
    },
    targets: p.queries.map((q, i) => ({ refId: String.fromCharCode(65 + i), expr: q.expr, legendFormat: q.legend })),
  };
}

/** A template variable over a label of the shim's or the workers' record counters. */
function labelVariable(name: string, query: string) {
  return {
    name,
    type: "query",
    datasource: { type: "prometheus", uid: "${datasource}" },
    query: { query, refId: name },
    definition: query,
    includeAll: true,
    multi: true,
    allValue: ".*",
    current: { text: "All", value: "$__all" },
    refresh: 2,
  };
}

/** Grafana's JSON for a row header. */
function rowJson(title: string, id: number, y: number) {
  return { id, type: "row", title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] };
}

/** The dashboard for these thresholds. */
export function dashboard(t: AlertThresholds) {
  const out: Array<ReturnType<typeof rowJson> | ReturnType<typeof panelJson>> = [];
  let id = 1;
  let y = 0;
  for (const row of panels(t)) {
    out.push(rowJson(row.row, id++, y++));
    row.panels.forEach((p, i) => out.push(panelJson(p, id++, (i % 3) * 8, y + Math.floor(i / 3) * 8)));
    y += Math.ceil(row.panels.length / 3) * 8;
  }
  return {
    uid: "sage-overview",
    title: "Sage jobs",
    tags: ["sage"],
    timezone: "browser",
    schemaVersion: 39,
    refresh: "10s",
    time: { from: "now-1h", to: "now" },
    templating: {
      list: [
        { name: "datasource", type: "datasource", query: "prometheus", current: {}, hide: 0 },
        labelVariable("pipeline", `label_values(${METRICS.recordsIn}, pipeline)`),
        labelVariable("job", `label_values(${METRICS.recordsIn}{pipeline=~"$pipeline"}, job_id)`),
      ],
    },
    panels: out,
  };
}

/** The dashboard as pretty JSON. */
export function dashboardJson(t: AlertThresholds): string {
  return `${JSON.stringify(dashboard(t), null, 2)}\n`;
}
