/**
 * Sage on Temporal, what a pipeline author uses: `definePipeline`, the DataStream types, the
 * function base classes and interfaces, sources and sinks, the errors a function throws, and the
 * types of the LLM operators.
 *
 * @example
 * ```ts
 * import { definePipeline, FileSink, FileSource } from "sage-temporal";
 *
 * export default definePipeline("wordcount", (env) =>
 *   env
 *     .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
 *     .flatMap((line: string) => line.toLowerCase().split(/\W+/).filter(Boolean), { name: "split" })
 *     .map((word) => ({ word, n: 1 }), { name: "pair" })
 *     .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
 * );
 * ```
 *
 * Run it with `sage run pipeline.ts --param input=in.txt --param output=out.jsonl`. The rest sits
 * behind subpaths: `sage-temporal/client` submits and serves pipelines from a program,
 * `sage-temporal/testing` starts a local Temporal dev server and Kafka broker, and
 * `sage-temporal/models` serves the local models.
 */
export { definePipeline, type Pipeline } from "./core/api/pipeline.js";
export type { StreamExecutionEnvironment } from "./core/api/environment.js";
export type { DataStream, ProcessedStream, ConnectedStreams, FeedbackStream, SinkHandle } from "./core/api/datastream.js";
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
export type { ParamRef, StringOrParam } from "./core/api/params.js";
export {
  MapFunction,
  FlatMapFunction,
  FilterFunction,
  ProcessFunction,
  CoMapFunction,
  CoFlatMapFunction,
  RichSinkFunction,
  RichSourceFunction,
  MAIN_THREAD,
  onMainThread,
  type RichFunction,
  type MapFunctionLike,
  type MapBatchFunctionLike,
  type FlatMapFunctionLike,
  type FilterFunctionLike,
  type ProcessFunctionLike,
  type CoMapFunctionLike,
  type CoFlatMapFunctionLike,
  type RouteFunctionLike,
  type SinkFunction,
  type SourceFunction,
  type SplitDescriptor,
  type MaybePromise,
  type MapFn,
  type MapBatchFn,
  type FlatMapFn,
  type FilterFn,
  type ProcessFn,
  type RouteFn,
  type SinkFn,
} from "./core/api/functions.js";
export {
  OutputTag,
  type FunctionContext,
  type RecordContext,
  type ProcessContext,
  type SinkContext,
  type SourceContext,
  type FunctionLogger,
} from "./core/api/context.js";
export type { ServiceFactory, ServiceContext, ServiceWorker, ClosableService } from "./core/api/services.js";
export { LanceVectorStore } from "./connectors/vector/vector-store.js";
export {
  AgentMemory,
  agentMemory,
  type AgentMemoryOptions,
  type KeptMemory,
  type Memory,
  type RecalledMemory,
  type RecallQuery,
} from "./connectors/vector/agent-memory.js";
export { Duration, WatermarkStrategy, type DurationLike, type TimestampAssigner, type WatermarkSpec } from "./core/api/time.js";
export {
  TumblingWindow,
  SlidingWindow,
  SessionWindow,
  CountWindow,
  type WindowAssigner,
  type WindowSpec,
  type TimeWindowSpec,
  type TimeWindow,
  type TimeDomain,
} from "./core/api/windows.js";
export type { KeyedStream, WindowedStream, JoinedStreams, JoinWindow, IntervalJoin, KeySelector, KeyByOptions } from "./core/api/keyed.js";
export type {
  AggregateFunction,
  ReduceFn,
  ReduceFunctionLike,
  KeyedProcessFunction,
  KeyedContext,
  OnTimerContext,
  KeyedStateStore,
  ValueState,
  ListState,
  MapState,
  StateOptions,
  TimerService,
  WindowContext,
  ProcessWindowFn,
  WindowResultFn,
  JoinFn,
  IntervalJoinFn,
  IntervalJoinContext,
} from "./core/api/state.js";
export type { OperatorOptions } from "./core/plan/builder.js";
export type { RetryPolicy } from "./core/plan/logical.js";
export {
  LLM_SERVICES,
  LLM_DOWNGRADED_FIELD,
  type ChatAnswer,
  type ChatMessage,
  type Hit,
  type Embedded,
  type Retrieved,
  type Prompted,
  type Generated,
  type Labelled,
  type LlmServices,
  type ModelClient,
  type ModelCall,
  type ChatCall,
  type Decoding,
  type GenerateOptions,
  type VectorIndex,
} from "./core/api/llm.js";
export { SentenceEmbeddingFunction } from "./connectors/llm/sentence-embedding-function.js";
export {
  SageError,
  NonRetryableError,
  PipelineDefinitionError,
  UnknownServiceError,
  SourceError,
  SinkError,
  ModelUnavailableError,
  AgentMemoryError,
  type ErrorScope,
  type SageErrorOptions,
} from "./core/errors.js";
