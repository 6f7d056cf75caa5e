/**
 * A real `@temporalio/worker` Worker serving one pipeline: the bundled plan interpreter workflow
 * plus the pipeline's stage activities, on the pipeline's task queue; with streaming stages as
 * activities, the stage activities also on a task queue of its own (`worker.own-queue`).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DataConverter } from "@temporalio/common";
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from "@temporalio/worker";
import type { Logger } from "pino";
import type { CompiledPipeline, Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { createActivities } from "../activities/index.js";
import { OperatorRegistry } from "../activities/registry.js";
import { serviceRegistryOf } from "../activities/services.js";
import { connectionOptions } from "../client/connection.js";
import { connectError } from "../client/connect-error.js";
import { taskQueueOf } from "../client/task-queue.js";
import { serveMetrics, type MetricsEndpoint } from "../monitoring/server.js";
import { sdkMetricsAddress } from "../monitoring/sdk-exporter.js";
import { installSdkRuntime, sdkRuntimeInstalled } from "./sdk-runtime.js";
import { KafkaSinkHost } from "../connectors/kafka/sink.js";
import { kafkaClientOf } from "../connectors/kafka/index.js";
import { kafkaSecurityOf } from "../connectors/kafka/security.js";
import { dataConverterOf } from "../security/data-converter.js";
import { StageThreads } from "../activities/stage/stage-threads.js";
import { workerSlotsOf } from "./slots.js";
import { streamPlacement } from "../activities/stage/thread-placement.js";
import { isStreaming } from "../core/plan/stream.js";
import { cachedWorkflowBundle } from "./workflow-bundle.js";

const WORKFLOWS_PATH = resolve(dirname(fileURLToPath(import.meta.url)), "../workflows/index.ts");

/**
 * Memo size above which the SDK warns when a workflow continues as new (its default is 2 KiB). A
 * job's memo holds its plan on purpose, for the Web UI and `sage dlq` (~9 KB for the test
 * pipelines), so every checkpoint of every streaming job warned. Far above that still warns.
 */
const MEMO_WARN_BYTES = 64 * 1024;

const bundles = new Map<string, Promise<WorkflowBundleWithSourceMap>>();
/**
 * The workflow bundle, once per process and failure converter, from the disk cache when this code
 * was bundled before (`cachedWorkflowBundle`): an encrypted job's workflows must encode failures as
 * its client and activities do.
 */
export function workflowBundle(dataConverter: DataConverter = {}): Promise<WorkflowBundleWithSourceMap> {
  const failures = dataConverter.failureConverterPath;
  let bundle = bundles.get(failures ?? "");
  if (!bundle) {
    bundle = cachedWorkflowBundle(WORKFLOWS_PATH, failures);
    bundles.set(failures ?? "", bundle);
  }
  return bundle;
}

/** Path of the workflow entry point (for replay). */
export const workflowsPath = WORKFLOWS_PATH;

/** A running worker for one pipeline. */
export interface SageWorker {
  readonly taskQueue: string;
  readonly worker: Worker;
  /** Runs until `shutdown` (or a fatal error); closes user functions afterwards. */
  run(): Promise<void>;
  /** Stops polling, waits for in-flight activities, closes user functions. */
  shutdown(): Promise<void>;
}

/** The module a pipeline came from: stage threads load it as the worker did (`cli/module-loader.ts`). */
export interface PipelineModule {
  /** Path of the module. */
  path: string;
  /** The pipeline's name, when the module exports several. */
  name?: string;
}

/** What a worker is made of. */
export interface SageWorkerOptions {
  pipeline: Pipeline;
  config: SageConfig;
  logger: Logger;
  identity?: string;
  /** The pipeline's module: without it, the worker has no stage threads (they load the pipeline from it). */
  module?: PipelineModule;
}

/** Creates a worker for `pipeline` against the configured Temporal server. */
export async function createSageWorker(options: SageWorkerOptions): Promise<SageWorker> {
  const dataConverter = dataConverterOf(options.config); // keys checked before anything starts
  // A streaming worker's Kafka certificates and password too: a bad one stops the worker here, not its first unit.
  const { config } = options;
  // Compiled once here: whether the pipeline streams decides the security check and the stage threads.
  const compiled = options.pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion });
  if (isStreaming(compiled.plan)) kafkaSecurityOf(config);
  // Then metrics: a port in use stops the worker before it polls anything.
  const metrics = await serveMetrics(options.config.monitoring, options.logger);
  try {
    if (!sdkRuntimeInstalled()) {
      installSdkRuntime(options.logger, metrics ? await sdkMetricsAddress(options.config.monitoring, metrics.port, options.logger) : null);
    }
    return await createWorker(options, compiled, dataConverter, metrics);
  } catch (err) {
    await metrics?.close();
    throw err;
  }
}

/** The worker's stage threads: `worker.threads` (default one per core) when the pipeline's module is known (streaming: `worker.stream-threads`). */
function stageThreadsOf(options: SageWorkerOptions, compiled: CompiledPipeline, threads: number, dataDir: string, identity: string): StageThreads | null {
  const { module, config, logger } = options;
  if (threads === 0) return null;
  if (!module) {
    logger.debug("no stage threads: the worker was not given the pipeline's module to load in them");
    return null;
  }
  // A streaming pipeline keeps threads only with `worker.stream-threads`, for a source stage of stateless operators (keyed stages keep their state here).
  if (isStreaming(compiled.plan)) {
    if (!config.worker["stream-threads"]) return null;
    const placed = compiled.plan.stages.map((s) => streamPlacement(compiled, s));
    if (!placed.some((p) => p.thread)) {
      logger.debug({ why: placed.map((p) => (p.thread ? "" : p.why)) }, "no stage threads: every stage of this streaming pipeline runs on the main thread");
      return null;
    }
  }
  return new StageThreads({
    threads,
    module: resolve(module.path),
    ...(module.name ? { pipelineName: module.name } : {}),
    dataDir,
    config,
    identity,
    logLevel: config.log.level,
    logger: logger.child({ component: "stage-threads" }),
  });
}

async function createWorker(
  options: SageWorkerOptions,
  compiled: CompiledPipeline,
  dataConverter: ReturnType<typeof dataConverterOf>,
  metrics: MetricsEndpoint | null,
): Promise<SageWorker> {
  const { pipeline, config, logger } = options;
  const dataDir = resolve(config["data-dir"]);
  let kafka: KafkaSinkHost | null = null;
  const identity = options.identity ?? `sage-worker@${process.pid}`;
  const pipelineLogger = logger.child({ pipeline: pipeline.name });
  const registry = new OperatorRegistry(pipeline, pipelineLogger, serviceRegistryOf(pipeline, config, dataDir, identity, pipelineLogger));
  const taskQueue = taskQueueOf(pipeline.name, config);
  const slots = workerSlotsOf(config);
  const threads = stageThreadsOf(options, compiled, slots.threads, dataDir, identity);
  // Before the worker polls: a unit never waits for a thread to start and load the pipeline.
  const threadsReady = threads ? await threads.start() : null;
  // Streaming stages as activities: this worker also polls a queue of its own, where keyed units whose state it holds come back.
  const ownQueue =
    !config.kafka["local-activities"] && config.worker["own-queue"] ? `${taskQueue}@${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}` : null;
  const activities = createActivities({
    registry,
    dataDir,
    logger,
    kafka: () => (kafka ??= new KafkaSinkHost(kafkaClientOf(config, logger), logger.child({ component: "kafka-sink" }), config.kafka["send-ahead"])),
    configParallelism: config.execution.parallelism,
    llm: config.llm,
    retain: { bytes: config.whatif.retain.bytes, ageMs: config.whatif.retain.age },
    state: { backend: config.state.backend, dir: resolve(config.state.dir), localRecovery: config.state["local-recovery"] },
    ...(ownQueue ? { ownQueue } : {}),
    ...(threads ? { threads } : {}),
  });
  const settings = connectionOptions(config);
  const connection = await NativeConnection.connect({ ...settings, payloadLimits: { memoWarnSize: MEMO_WARN_BYTES } }).catch(async (err: unknown) => {
    throw await connectError(settings, err);
  });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue,
    workflowBundle: await workflowBundle(dataConverter),
    activities,
    dataConverter,
    identity,
    maxConcurrentActivityTaskExecutions: slots.activities,
    maxConcurrentActivityTaskPolls: Math.max(2, Math.min(10, slots.activities)),
    shutdownGraceTime: "10s",
    // After a worker dies, its sticky workflow tasks move to the normal queue after this (default 10 s).
    stickyQueueScheduleToStartTimeout: "3s",
  });
  const own = ownQueue
    ? await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: ownQueue,
        activities,
        dataConverter,
        identity,
        maxConcurrentActivityTaskExecutions: slots.activities,
        maxConcurrentActivityTaskPolls: 2,
        shutdownGraceTime: "10s",
      })
    : null;
  /** Both workers run until either stops: a worker no longer polling its own queue must not go on being named as an owner. */
  const runWorkers = async (): Promise<void> => {
    if (!own) return worker.run();
    const stop = (w: Worker): void => {
      if (w.getState() === "RUNNING" || w.getState() === "INITIALIZED") w.shutdown();
    };
    const ended = await Promise.allSettled([worker.run().finally(() => stop(own)), own.run().finally(() => stop(worker))]);
    for (const e of ended) if (e.status === "rejected") throw e.reason;
  };
  let running: Promise<void> | null = null;
  const run = async (): Promise<void> => {
    logger.info(
      {
        taskQueue,
        ...(ownQueue ? { ownQueue } : {}),
        pipeline: pipeline.name,
        namespace: config.temporal.namespace,
        activitySlots: slots.activities,
        stageThreads: threads?.size ?? 0,
        ...(threadsReady !== null ? { stageThreadsReadyMs: Math.round(threadsReady) } : {}),
      },
      "worker started",
    );
    try {
      await runWorkers();
    } finally {
      await threads?.close();
      await registry.close();
      await kafka?.close();
      await connection.close();
      await metrics?.close();
      logger.info({ taskQueue }, "worker stopped");
    }
  };
  return {
    taskQueue,
    worker,
    run() {
      running ??= run();
      return running;
    },
    async shutdown() {
      for (const w of [worker, own]) if (w && (w.getState() === "RUNNING" || w.getState() === "INITIALIZED")) w.shutdown();
      await running;
    },
  };
}
