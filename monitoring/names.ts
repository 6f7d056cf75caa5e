/**
 * The names of Sage's Prometheus metrics, in one place for the definitions, the alert rules and the
 * dashboard. They are a public contract (rules and dashboards are written against them): keep them.
 * A Sage job is labelled `job_id`, not `job`: Prometheus gives every scraped series its own `job`
 * (the scrape job) and would rename ours to `exported_job`.
 */

/** Every metric Sage defines (all `sage_`), by role. */
export const METRICS = {
  /** Records into / out of an operator {pipeline, job_id, operator}. */
  recordsIn: "sage_operator_records_in_total",
  recordsOut: "sage_operator_records_out_total",
  /** Records an operator sent to the dead letters {pipeline, job_id, operator}. */
  deadLetters: "sage_operator_dead_letters_total",
  /** Failed tries of a user function, retried or not {pipeline, job_id, operator}. */
  operatorErrors: "sage_operator_errors_total",
  /** Tries of a user function after a failed one {pipeline, job_id, operator}. */
  operatorRetries: "sage_operator_retries_total",
  /** Record payload bytes a stage activity received {pipeline, job_id, stage}. */
  stageBytesIn: "sage_stage_bytes_in_total",
  /** Key and value bytes a streaming stage committed to Kafka {pipeline, job_id, stage, topic}. */
  stageBytesOut: "sage_stage_bytes_out_total",
  /** Stage activity attempts that failed {pipeline, job_id, stage, code}. */
  stageErrors: "sage_stage_errors_total",
  /** Stage activity attempts after the first (Temporal retries) {pipeline, job_id, stage}. */
  stageRetries: "sage_stage_retries_total",
  /** Batch latency: wall time of one stage activity on one split or micro-batch {pipeline, job_id, stage}. */
  stageDuration: "sage_stage_duration_seconds",
  /** Source record timestamp to the commit of the sink's transaction {pipeline, job_id, stage}. */
  endToEnd: "sage_end_to_end_latency_seconds",
  /** Records / bytes (keys and values) / micro-batches the shim delivered {pipeline, job_id, topic}. */
  shimRecords: "sage_shim_records_total",
  shimBytes: "sage_shim_bytes_total",
  shimBatches: "sage_shim_batches_total",
  shimWaits: "sage_shim_backpressure_waits_total",
  shimSignal: "sage_shim_signal_duration_seconds",
  shimPending: "sage_shim_pending_batches",
  /** Records of a source partition not yet processed by the job {pipeline, job_id, topic, partition}. */
  consumerLag: "sage_consumer_lag_records",
  /** Now minus a keyed operator's watermark {pipeline, job_id, operator, workflow}. */
  watermarkLag: "sage_watermark_lag_seconds",
  /** Checkpoints (continue-as-new) of partition workflows {pipeline, job_id}. */
  checkpoints: "sage_checkpoints_total",
  checkpointDuration: "sage_checkpoint_duration_seconds",
  /** History bytes of the run the last checkpoint closed {pipeline, job_id, workflow}. */
  checkpointBytes: "sage_checkpoint_history_bytes",
  /** Checkpoint holds that did not see the run close in time, or failed {pipeline, job_id}. */
  checkpointFailures: "sage_checkpoint_failures_total",
  /** Keyed state per operator and partition workflow {pipeline, job_id, operator, workflow}. */
  stateBytes: "sage_state_bytes",
  stateEntries: "sage_state_entries",
  stateTimers: "sage_state_timers",
  /** Model requests answered, from the endpoint or the cache {pipeline, job_id, operator, model, kind}. */
  llmRequests: "sage_llm_requests_total",
  llmCacheHits: "sage_llm_cache_hits_total",
  /** Tokens the endpoint was paid for (cache hits cost none) {pipeline, job_id, operator, model}. */
  llmTokensIn: "sage_llm_tokens_in_total",
  llmTokensOut: "sage_llm_tokens_out_total",
  /** Estimated cost from `llm.prices` {pipeline, job_id, operator, model}. */
  llmCost: "sage_llm_cost_usd_total",
  /** 429 answers of the endpoint, per model {model}. */
  llmRateLimited: "sage_llm_rate_limited_total",
  /** Time calls waited in the per-model rate limiter (buckets or a 429 pause) {model}. */
  llmLimiterWait: "sage_llm_limiter_wait_seconds_total",
  /** What is left of an `llm.budget` limit {pipeline, job_id ("" for a pipeline budget), scope, limit}. */
  llmBudgetRemainingUsd: "sage_llm_budget_remaining_usd",
  llmBudgetRemainingTokens: "sage_llm_budget_remaining_tokens",
} as const;

/** Prefix of the process metrics (CPU, memory, event loop, GC): `sage_process_process_cpu_seconds_total` and so on. */
export const PROCESS_PREFIX = "sage_process_";
