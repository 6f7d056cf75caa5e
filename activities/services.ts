/**
 * The services of one worker process (or one stage thread): the pipeline's registered factories plus
 * the built-in `llm`, each opened once on first use (concurrent first uses share the one open) and
 * closed once, newest first, when the worker stops.
 */
import { threadId } from "node:worker_threads";
import type { Logger } from "pino";
import { LLM_SERVICES } from "../core/api/llm.js";
import type { Pipeline } from "../core/api/pipeline.js";
import { isClosable, type ServiceFactory, type ServiceWorker } from "../core/api/services.js";
import type { SageConfig } from "../core/config/schema.js";
import { InternalError, UnknownServiceError } from "../core/errors.js";
import { llmService } from "../connectors/llm/services.js";

/** What every factory of one registry is given besides its name. */
export interface ServiceScope {
  pipeline: string;
  config: SageConfig;
  dataDir: string;
  worker: ServiceWorker;
}

/** Opens services by name, once each, and closes them at shutdown. */
export class ServiceRegistry {
  private readonly opening = new Map<string, Promise<unknown>>();
  private readonly opened: Array<{ name: string; service: unknown }> = [];
  private closed = false;

  constructor(
    private readonly factories: ReadonlyMap<string, ServiceFactory<unknown>>,
    private readonly scope: ServiceScope | null,
    private readonly logger: Logger,
  ) {}

  /** A registry with no services (a host built without a worker: tests, benches). */
  static none(logger: Logger): ServiceRegistry {
    return new ServiceRegistry(new Map(), null, logger);
  }

  /** Names of the services this registry can open, sorted. */
  names(): string[] {
    return [...this.factories.keys()].sort();
  }

  /** The service `name` for `operator`, opened on first use; rejects with `UnknownServiceError` for an unknown name. */
  get<T>(name: string, operator: string): Promise<T> {
    const factory = this.factories.get(name);
    if (!factory || !this.scope) return Promise.reject(new UnknownServiceError(name, operator, this.names()));
    if (this.closed) return Promise.reject(new InternalError(`service "${name}" asked for by operator "${operator}" after the worker closed its services`));
    let open = this.opening.get(name);
    if (!open) {
      const logger = this.logger.child({ service: name });
      open = Promise.resolve()
        .then(() => factory({ name, ...this.scope!, logger }))
        .then((service) => {
          this.opened.push({ name, service });
          logger.debug({ thread: this.scope!.worker.thread }, "service opened");
          return service;
        });
      this.opening.set(name, open);
      // A failed open is forgotten: the next use (a retry of the record or the activity) tries again.
      open.catch(() => this.opening.delete(name));
    }
    return open as Promise<T>;
  }

  /** Closes every opened service once, the last opened first; errors are logged, not thrown. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.opening.values()]);
    for (const { name, service } of this.opened.splice(0).reverse()) {
      if (!isClosable(service)) continue;
      try {
        await service.close();
      } catch (err) {
        this.logger.error({ err, service: name }, "close() of a service failed");
      }
    }
    this.opening.clear();
  }
}

/** The services of a worker serving `pipeline`: the built-in `llm` and those the pipeline registered. */
export function serviceRegistryOf(pipeline: Pipeline, config: SageConfig, dataDir: string, identity: string, logger: Logger): ServiceRegistry {
  const { services } = pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion });
  const factories = new Map<string, ServiceFactory<unknown>>([[LLM_SERVICES, llmService(logger)], ...services]);
  return new ServiceRegistry(factories, { pipeline: pipeline.name, config, dataDir, worker: { identity, pid: process.pid, thread: threadId } }, logger);
}
