/**
 * `sage-temporal/client`: submit, serve, watch and re-run pipelines from a program, as
 * `examples/wordcount/client.ts` does; the CLI is built on the same calls.
 *
 * @example
 * ```ts
 * import { SageClient, createLogger, createSageWorker, loadConfig } from "sage-temporal/client";
 * import pipeline from "./pipeline.js";
 *
 * const config = loadConfig(); // sage.config.yaml + SAGE_* env vars
 * const worker = await createSageWorker({ pipeline, config, logger: createLogger("info") });
 * const running = worker.run();
 * const client = await SageClient.connect({ config });
 * const job = await client.submit(pipeline, { params: { input: "in.txt", output: "out.jsonl" } });
 * console.log(await job.result());
 * ```
 */
export { loadConfig, type LoadConfigOptions } from "../client/config-loader.js";
export type { SageConfig } from "../core/config/schema.js";
export { createLogger } from "../client/logger.js";
export { SageClient, SageJob, JobFailedError, type ConnectOptions, type SubmitOptions } from "../client/sage-client.js";
export { createSageWorker, type PipelineModule, type SageWorker, type SageWorkerOptions } from "../worker/sage-worker.js";
export { uiLink } from "../cli/common.js";
export type { JobProgress, JobResult, LlmBudgetPause, OperatorCounts, StageCounts } from "../core/plan/job.js";
export type { CompiledPipeline } from "../core/api/pipeline.js";
export type { PhysicalPlan, Stage, StageEdge, ChainCut, CompileOptions } from "../core/plan/physical.js";
export type { LogicalGraph, LogicalNode, NodeInput, OperatorKind } from "../core/plan/logical.js";
export { StreamJob, StreamJobHandle, type StreamJobOptions, type StreamJobProgress } from "../streaming/stream-job.js";
export type { StreamProgress } from "../core/plan/stream.js";
export { KafkaShim, shimOptionsOf, type ShimOptions, type ShimStats } from "../streaming/shim.js";
export { kafkaClientOf } from "../connectors/kafka/index.js";
export type { KafkaClient } from "../connectors/kafka/client.js";
export { rerunRecorded, type RecordedRerun } from "../replay/recorded-rerun.js";
export { indexDocuments, indexExists, type IndexReport } from "../client/indexer.js";
export { readUsage, type UsageTotals } from "../connectors/llm/usage-ledger.js";
export {
  ConfigError,
  ServerUnavailableError,
  PlanMismatchError,
  MissingParameterError,
  NotRecordedError,
  BrokerUnavailableError,
  VectorIndexError,
} from "../core/errors.js";
