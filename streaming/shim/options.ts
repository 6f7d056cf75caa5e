/** The shim's tuning, from configuration, and the counters it keeps. */
import type { SageConfig } from "../../core/config/schema.js";

/** Tuning of the shim (from `kafka.*` and `execution.*` configuration). */
export interface ShimOptions {
  maxBatchRecords: number;
  maxBatchBytes: number;
  bufferTimeoutMs: number;
  maxUnacked: number;
  sessionTimeoutMs: number;
  fetchBytes: number;
  /** Create missing source and Kafka-sink topics (one partition per partition workflow) rather than refuse to start. */
  createTopics?: boolean;
}

/** Shim options from configuration. */
export function shimOptionsOf(config: SageConfig): ShimOptions {
  return {
    maxBatchRecords: config.kafka["max-batch-records"],
    maxBatchBytes: config.execution["max-batch-bytes"],
    bufferTimeoutMs: config.execution["buffer-timeout"],
    maxUnacked: config.kafka["max-unacked-batches"],
    sessionTimeoutMs: config.kafka["session-timeout"],
    fetchBytes: config.kafka["fetch-bytes"],
    createTopics: config.kafka["create-topics"],
  };
}

/** Counters of a shim, for logs, tests and benchmarks. */
export interface ShimStats {
  /** Batch signals sent (each carries the batches queued for its workflow since the last). */
  signals: number;
  batches: number;
  records: number;
  bytes: number;
  /** Times a sender waited because a workflow had `maxUnacked` batches pending. */
  backpressureWaits: number;
  /** Times a partition was paused because its workflow's queue was full. */
  fetchPauses: number;
  /** Times a partition was paused because its workflow's batch waits for the LLM budget (`llm.budget.policy: pause`). */
  budgetPauses: number;
  /** Most pending batches seen on any workflow (from its progress query). */
  maxPendingSeen: number;
  signalRetries: number;
  consumerRestarts: number;
  /** Checkpoint holds that ended with the run continued as new. */
  holds: number;
}

/** Counters at zero. */
export function newShimStats(): ShimStats {
  return {
    signals: 0,
    batches: 0,
    records: 0,
    bytes: 0,
    backpressureWaits: 0,
    fetchPauses: 0,
    budgetPauses: 0,
    maxPendingSeen: 0,
    signalRetries: 0,
    consumerRestarts: 0,
    holds: 0,
  };
}
