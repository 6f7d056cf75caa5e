/**
 * What a worker measures of its stage activities: records per operator, bytes, errors and retries,
 * batch latency, and the end-to-end latency of what a streaming unit committed to its sinks.
 */
import { Counter, Histogram } from "prom-client";
import { SageError } from "../core/errors.js";
import type { StageCounts } from "../core/plan/job.js";
import { METRICS } from "./names.js";
import { metricsRegistry } from "./registry.js";
import { BulkHistogram } from "./bulk-histogram.js";

/** Who a stage activity ran for (a `StageInput` has these). */
export interface StageRef {
  pipeline: string;
  jobId: string;
  stage: string;
}

const registers = [metricsRegistry];
const operatorLabels = ["pipeline", "job_id", "operator"] as const;
const stageLabels = ["pipeline", "job_id", "stage"] as const;

const recordsIn = new Counter({ name: METRICS.recordsIn, help: "Records into an operator", labelNames: operatorLabels, registers });
const recordsOut = new Counter({ name: METRICS.recordsOut, help: "Records out of an operator", labelNames: operatorLabels, registers });
const deadLetters = new Counter({ name: METRICS.deadLetters, help: "Records an operator sent to the dead letters", labelNames: operatorLabels, registers });
const operatorErrors = new Counter({
  name: METRICS.operatorErrors,
  help: "Failed tries of a user function (an exception or a timeout), retried or not",
  labelNames: operatorLabels,
  registers,
});
const operatorRetries = new Counter({
  name: METRICS.operatorRetries,
  help: "Tries of a user function after a failed one",
  labelNames: operatorLabels,
  registers,
});
const bytesIn = new Counter({
  name: METRICS.stageBytesIn,
  help: "Record payload bytes a stage activity received (streaming micro-batches as signalled, compressed; bounded edge batch files)",
  labelNames: stageLabels,
  registers,
});
const bytesOut = new Counter({
  name: METRICS.stageBytesOut,
  help: "Key and value bytes a streaming stage committed to Kafka, by topic (sinks, dead letters, repartition and changelog topics)",
  labelNames: [...stageLabels, "topic"],
  registers,
});
const stageErrors = new Counter({
  name: METRICS.stageErrors,
  help: "Stage activity attempts that failed, by error code",
  labelNames: [...stageLabels, "code"],
  registers,
});
const stageRetries = new Counter({
  name: METRICS.stageRetries,
  help: "Stage activity attempts after the first (Temporal retries)",
  labelNames: stageLabels,
  registers,
});
const stageSeconds = new Histogram({
  name: METRICS.stageDuration,
  help: "Batch latency: wall time of one stage activity (one split or micro-batch)",
  labelNames: stageLabels,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers,
});
const endToEnd = new BulkHistogram(
  METRICS.endToEnd,
  "End-to-end latency: a record's source timestamp to the commit of the sink transaction that wrote its output",
  stageLabels,
  [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  metricsRegistry,
);

/** Counts one stage activity attempt as it starts: its input bytes, and a retry when it is not the first. */
export function stageStarted(ref: StageRef, attempt: number, records: readonly Uint8Array[], edgeBytes = 0): void {
  const labels = { pipeline: ref.pipeline, job_id: ref.jobId, stage: ref.stage };
  let bytes = edgeBytes;
  for (const r of records) bytes += r.byteLength;
  if (bytes > 0) bytesIn.inc(labels, bytes);
  if (attempt > 1) stageRetries.inc(labels);
}

/** Records a stage activity that completed: its counts per operator and its wall time. */
export function stageDone(ref: StageRef, counts: StageCounts, seconds: number): void {
  stageSeconds.observe({ pipeline: ref.pipeline, job_id: ref.jobId, stage: ref.stage }, seconds);
  for (const [operator, c] of Object.entries(counts)) {
    const labels = { pipeline: ref.pipeline, job_id: ref.jobId, operator };
    recordsIn.inc(labels, c.in);
    recordsOut.inc(labels, c.out);
    if (c.dead > 0) deadLetters.inc(labels, c.dead);
  }
}

/** Counts a stage activity attempt that failed, by its error code (the class name for errors not ours). */
export function stageFailed(ref: StageRef, err: unknown): void {
  const code = err instanceof SageError ? err.code : err instanceof Error ? err.name : "Error";
  stageErrors.inc({ pipeline: ref.pipeline, job_id: ref.jobId, stage: ref.stage, code });
}

/** A failed try of a user function, as a stage thread hands it to the main thread's metrics. */
export interface FailedTry {
  pipeline: string;
  jobId: string;
  operator: string;
  retried: boolean;
}

/** In a stage thread: the failed tries since the last `takeFailedTries` (null: counted at once, as on the main thread). */
let heldTries: FailedTry[] | null = null;

/** In a stage thread: failed tries are held, not counted, until `takeFailedTries` (the thread's metrics are never scraped). */
export function holdFailedTries(): void {
  heldTries ??= [];
}

/** The failed tries held since the last call (empty unless `holdFailedTries` was called). */
export function takeFailedTries(): FailedTry[] {
  if (!heldTries) return [];
  const taken = heldTries;
  heldTries = [];
  return taken;
}

/** Counts a failed try of operator `operator`'s user function; `retried`: another try follows. */
export function operatorTryFailed(ref: { pipeline: string; jobId: string }, operator: string, retried: boolean): void {
  if (heldTries) {
    heldTries.push({ pipeline: ref.pipeline, jobId: ref.jobId, operator, retried });
    return;
  }
  const labels = { pipeline: ref.pipeline, job_id: ref.jobId, operator };
  operatorErrors.inc(labels);
  if (retried) operatorRetries.inc(labels);
}

/** A message a streaming unit committed: its topic, and the Kafka message (the source timestamp passes through to sinks). */
export interface CommittedMessage {
  topic: string;
  message: { key: string | Buffer | null; value: string | Buffer | null; timestamp?: string };
}

function sizeOf(v: string | Buffer | null): number {
  return v === null ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.byteLength;
}

/**
 * Records what a streaming unit committed at `committedAt`: bytes per topic, and for each message
 * to a sink topic (not the dead letters, not the job's own `sage.<pipeline>.<job>.*` topics) that
 * carries its source record's timestamp, the end-to-end latency.
 */
export function unitCommitted(ref: StageRef, messages: readonly CommittedMessage[], deadLetterTopic: string, committedAt = Date.now()): void {
  const labels = { pipeline: ref.pipeline, job_id: ref.jobId, stage: ref.stage };
  const internal = `sage.${ref.pipeline}.${ref.jobId}.`;
  const bytes = new Map<string, number>();
  const latencies: number[] = [];
  for (const { topic, message } of messages) {
    bytes.set(topic, (bytes.get(topic) ?? 0) + sizeOf(message.key) + sizeOf(message.value));
    if (message.timestamp === undefined || topic === deadLetterTopic || topic.startsWith(internal)) continue;
    const ts = Number(message.timestamp);
    if (ts > 0) latencies.push(Math.max(0, committedAt - ts) / 1000);
  }
  if (latencies.length > 0) endToEnd.observeAll(labels, latencies);
  for (const [topic, n] of bytes) bytesOut.inc({ ...labels, topic }, n);
}
