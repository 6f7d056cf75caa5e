/**
 * Sage on Temporal: the public API. Declare a pipeline with `definePipeline`, submit it with
 * `SageClient`, serve it with `createSageWorker`.
 */
export { definePipeline, isPipeline, type Pipeline, type CompiledPipeline } from "./core/api/pipeline.js";
export { StreamExecutionEnvironment } from "./core/api/environment.js";
export { DataStream, ProcessedStream, ConnectedStreams, FeedbackStream, type SinkHandle } from "./core/api/datastream.js";
export {
  FileSource,
  FileSink,
  PrintSink,
  KafkaSource,
  KafkaSink,
  type SourceDescriptor,
  type SinkDescriptor,
  type FileSourceOptions,
  type KafkaRecord,
  type KafkaFormat,
  type KafkaSourceOptions,
  type KafkaSinkOptions,
} from "./core/api/connectors.js";
export { ParamRef, type StringOrParam } from "./core/api/params.js";
export {
  EmbedFunction,
  RetrieveFunction,
  PromptFunction,
  GenerateFunction,
  EmbeddingClassifier,
  ChatClassifier,
  fillTemplate,
  LLM_SERVICES,
  type ChatMessage,
  type ChatCall,
  type ModelCall,
  type ModelClient,
  type Hit,
  type VectorIndex,
  type LlmServices,
  type Embedded,
  type Retrieved,
  type Prompted,
  type Generated,
  type Labelled,
} from "./core/api/llm.js";
export {
  OutputTag,
  type FunctionContext,
  type RecordContext,
  type ProcessContext,
  type SinkContext,
  type WorkerServices,
  type SourceContext,
  type FunctionLogger,
} from "./core/api/context.js";
export {
  MapFunction,
  FlatMapFunction,
  CoMapFunction,
  CoFlatMapFunction,
  type CoMapFunctionLike,
  type CoFlatMapFunctionLike,
  type RouteFunctionLike,
  type RouteFn,
  FilterFunction,
  ProcessFunction,
  RichSinkFunction,
  RichSourceFunction,
  type RichFunction,
  type MapFunctionLike,
  type MapBatchFunctionLike,
  type MapBatchFn,
  type FlatMapFunctionLike,
  type FilterFunctionLike,
  type ProcessFunctionLike,
  type SinkFunction,
  type SourceFunction,
  type SplitDescriptor,
} from "./core/api/functions.js";
export type { OperatorOptions } from "./core/plan/builder.js";
export type { RetryPolicy, LogicalGraph, LogicalNode } from "./core/plan/logical.js";
export type { PhysicalPlan, Stage, StageEdge, ChainCut } from "./core/plan/physical.js";
export type { JobProgress, JobResult, OperatorCounts } from "./core/plan/job.js";
export {
  SageError,
  NonRetryableError,
  PipelineDefinitionError,
  ConfigError,
  PlanMismatchError,
  NonSerializableValueError,
  PayloadBudgetError,
  SourceError,
  SinkError,
  ServerUnavailableError,
  ModelUnavailableError,
  NotRecordedError,
} from "./core/errors.js";
export type { SageConfig } from "./core/config/schema.js";
export { loadConfig } from "./client/config-loader.js";
export { SageClient, SageJob, JobFailedError, type ConnectOptions, type SubmitOptions } from "./client/sage-client.js";
export { createSageWorker, type SageWorker } from "./worker/sage-worker.js";
export { StreamJob, type StreamJobOptions, type StreamJobProgress } from "./streaming/stream-job.js";
export { KafkaShim, shimOptionsOf, type ShimOptions, type ShimStats } from "./streaming/shim.js";
export type { StreamProgress } from "./core/plan/stream.js";
export type { KafkaClient } from "./connectors/kafka/client.js";
export { kafkaClientOf } from "./connectors/kafka/index.js";
export { createLogger } from "./client/logger.js";
export { rerunRecorded, type RecordedRerun } from "./replay/recorded-rerun.js";
export { indexDocuments, indexExists, type IndexReport } from "./client/indexer.js";
export { SentenceEmbeddingFunction } from "./connectors/llm/sentence-embedding-function.js";
export { ensureServer as ensureTemporalServer, uiLink } from "./cli/common.js";
export { LOCAL_BASE_URL, RECORDED_FROM_PARAM } from "./connectors/llm/model-endpoint.js";
export { readUsage, type UsageTotals } from "./connectors/llm/usage-ledger.js";
