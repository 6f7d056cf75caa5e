/**
 * What a shim measures: records, bytes and micro-batches it delivered, its backpressure, and what
 * it learns from the partition workflows' progress (watermark lag, checkpoints, keyed state) and
 * from the broker (consumer lag per partition).
 */
import { Counter, Gauge, Histogram } from "prom-client";
import type { StreamProgress } from "../core/plan/stream.js";
import { METRICS } from "./names.js";
import { metricsRegistry } from "./registry.js";

/** The job a shim feeds. */
export interface JobRef {
  pipeline: string;
  jobId: string;
}

const registers = [metricsRegistry];
const topicLabels = ["pipeline", "job_id", "topic"] as const;
const workflowLabels = ["pipeline", "job_id", "workflow"] as const;
const operatorLabels = ["pipeline", "job_id", "operator", "workflow"] as const;

const records = new Counter({ name: METRICS.shimRecords, help: "Records the shim delivered to partition workflows", labelNames: topicLabels, registers });
const bytes = new Counter({ name: METRICS.shimBytes, help: "Key and value bytes of the records the shim delivered", labelNames: topicLabels, registers });
const batches = new Counter({ name: METRICS.shimBatches, help: "Micro-batches the shim delivered", labelNames: topicLabels, registers });
const waits = new Counter({
  name: METRICS.shimWaits,
  help: "Times the shim waited because a partition workflow had max-unacked-batches pending",
  labelNames: ["pipeline", "job_id"],
  registers,
});
const signalSeconds = new Histogram({
  name: METRICS.shimSignal,
  help: "Time from cutting a micro-batch to the signal being accepted by the server",
  labelNames: ["pipeline", "job_id"],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
  registers,
});
const pending = new Gauge({
  name: METRICS.shimPending,
  help: "Batches a partition workflow holds unprocessed, as the shim last saw them",
  labelNames: workflowLabels,
  registers,
});
const consumerLag = new Gauge({
  name: METRICS.consumerLag,
  help: "Records of a source partition not yet processed by the job (the partition's end offset minus the job's processed offset)",
  labelNames: ["pipeline", "job_id", "topic", "partition"],
  registers,
});
const watermarkLag = new Gauge({ name: METRICS.watermarkLag, help: "Now minus a keyed operator's watermark", labelNames: operatorLabels, registers });
const checkpoints = new Counter({
  name: METRICS.checkpoints,
  help: "Checkpoints (continue-as-new) of partition workflows",
  labelNames: ["pipeline", "job_id"],
  registers,
});
const checkpointSeconds = new Histogram({
  name: METRICS.checkpointDuration,
  help: "From a partition workflow's run wanting to checkpoint to its close",
  labelNames: ["pipeline", "job_id"],
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers,
});
const checkpointBytes = new Gauge({
  name: METRICS.checkpointBytes,
  help: "History bytes of the run the last checkpoint closed",
  labelNames: workflowLabels,
  registers,
});
const checkpointFailures = new Counter({
  name: METRICS.checkpointFailures,
  help: "Checkpoint holds that did not see the run close in time, or failed (the run then closes racing batches)",
  labelNames: ["pipeline", "job_id"],
  registers,
});
const stateBytes = new Gauge({
  name: METRICS.stateBytes,
  help: "Keyed state bytes of an operator in a partition workflow",
  labelNames: operatorLabels,
  registers,
});
const stateEntries = new Gauge({
  name: METRICS.stateEntries,
  help: "Keyed state entries of an operator in a partition workflow",
  labelNames: operatorLabels,
  registers,
});
const stateTimers = new Gauge({ name: METRICS.stateTimers, help: "Timers of an operator in a partition workflow", labelNames: operatorLabels, registers });

/** The last checkpoint counted per partition workflow (its `at`), so each is counted once however often it is polled. */
const seenCheckpoints = new Map<string, string>();

/** Shim metrics (they share the registry of a worker in the same process). */
export const shimMetrics = {
  /** A micro-batch's signal returned: the workflow holds it. */
  delivered(job: JobRef, topic: string, count: number, size: number, seconds: number): void {
    const labels = { pipeline: job.pipeline, job_id: job.jobId, topic };
    records.inc(labels, count);
    bytes.inc(labels, size);
    batches.inc(labels);
    signalSeconds.observe({ pipeline: job.pipeline, job_id: job.jobId }, seconds);
  },
  /** A sender waited for room (backpressure). */
  waited(job: JobRef): void {
    waits.inc({ pipeline: job.pipeline, job_id: job.jobId });
  },
  /** A checkpoint hold ended without seeing the run close, or failed. */
  checkpointFailed(job: JobRef): void {
    checkpointFailures.inc({ pipeline: job.pipeline, job_id: job.jobId });
  },
  /** Consumer lag of one source partition. */
  lag(job: JobRef, topic: string, partition: number, records: number): void {
    consumerLag.set({ pipeline: job.pipeline, job_id: job.jobId, topic, partition: String(partition) }, Math.max(0, records));
  },
  /** What a partition workflow's progress answer says: pending batches, watermarks, its last checkpoint, keyed state. */
  progress(job: JobRef, workflow: string, p: StreamProgress, now = Date.now()): void {
    const base = { pipeline: job.pipeline, job_id: job.jobId };
    pending.set({ ...base, workflow }, p.pending);
    for (const [operator, wm] of Object.entries(p.watermarks ?? {})) watermarkLag.set({ ...base, operator, workflow }, Math.max(0, now - wm) / 1000);
    for (const [operator, s] of Object.entries(p.state ?? {})) {
      stateBytes.set({ ...base, operator, workflow }, s.bytes);
      stateEntries.set({ ...base, operator, workflow }, s.entries);
      stateTimers.set({ ...base, operator, workflow }, s.timers);
    }
    const cp = p.lastCheckpoint;
    if (cp && seenCheckpoints.get(workflow) !== `${cp.at}/${cp.run}`) {
      seenCheckpoints.set(workflow, `${cp.at}/${cp.run}`);
      checkpoints.inc(base);
      checkpointSeconds.observe(base, cp.ms / 1000);
      checkpointBytes.set({ ...base, workflow }, cp.historyBytes);
    }
  },
};
