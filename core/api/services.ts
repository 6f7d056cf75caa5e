/**
 * Services that user functions share (SAGE's `register_service`): a pipeline registers a factory by
 * name with `env.registerService(name, factory)`; any function reaches the service with
 * `await ctx.service<T>(name)`. A service opens once per worker process (once per stage thread in a
 * thread that uses it) on first use, and closes when the worker stops, like a function's
 * `open`/`close`. Declared here; the runtime that opens and closes them is `activities/services.ts`.
 */
import type { SageConfig } from "../config/schema.js";
import type { FunctionLogger } from "./context.js";
import type { MaybePromise } from "./functions.js";

/** Which worker (and which of its threads) is opening a service. */
export interface ServiceWorker {
  /** The worker's identity as Temporal shows it (`sage-worker@<pid>` unless set). */
  readonly identity: string;
  /** Process id of the worker. */
  readonly pid: number;
  /** `worker_threads` id of the thread opening the service: 0 on the worker's main thread, else a stage thread's. */
  readonly thread: number;
}

/** What a service factory is given when its service opens. */
export interface ServiceContext {
  /** The name the service was registered under. */
  readonly name: string;
  /** The pipeline the worker serves. */
  readonly pipeline: string;
  /** The worker's validated configuration. */
  readonly config: SageConfig;
  /** The worker's data directory (absolute): where a per-process store may keep files. */
  readonly dataDir: string;
  /** Logger bound to the pipeline and the service. */
  readonly logger: FunctionLogger;
  /** Which worker process and thread the service belongs to. */
  readonly worker: ServiceWorker;
}

/**
 * Makes a service. What it returns is what `ctx.service<T>(name)` gives; if that has a `close()`
 * method, the worker calls it once at shutdown.
 */
export type ServiceFactory<T> = (ctx: ServiceContext) => MaybePromise<T>;

/** A service that holds something to let go of at shutdown (a connection, a file handle, an index). */
export interface ClosableService {
  close(): MaybePromise<void>;
}

/** True when `service` has a `close()` the worker calls at shutdown. */
export function isClosable(service: unknown): service is ClosableService {
  return typeof service === "object" && service !== null && typeof (service as { close?: unknown }).close === "function";
}
