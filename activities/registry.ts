/**
 * The operator registry of one worker process: the pipeline module compiled once per
 * (parallelism, fusion), its user functions by operator id, each opened once and closed on shutdown,
 * and the services they share.
 */
import type { Logger } from "pino";
import type { CompiledPipeline, Pipeline } from "../core/api/pipeline.js";
import type { FunctionContext } from "../core/api/context.js";
import type { RichFunction } from "../core/api/functions.js";
import { PlanMismatchError } from "../core/errors.js";
import type { LogicalNode } from "../core/plan/logical.js";
import { ServiceRegistry } from "./services.js";

/** What identifies the plan a job was submitted with. */
export interface PlanKey {
  planHash: string;
  parallelism: number;
  fusion: boolean;
}

/** Holds compiled plans and opened functions for one pipeline in one worker process. */
export class OperatorRegistry {
  private readonly compiled = new Map<string, CompiledPipeline>();
  private readonly opened = new Map<unknown, Promise<void>>();
  private readonly toClose: RichFunction[] = [];
  /** The services functions reach with `ctx.service(name)` (none unless the worker gives them). */
  readonly services: ServiceRegistry;

  constructor(
    readonly pipeline: Pipeline,
    private readonly logger: Logger,
    services?: ServiceRegistry,
  ) {
    this.services = services ?? ServiceRegistry.none(logger);
  }

  /** The pipeline compiled with the given options (cached). */
  compile(parallelism: number, fusion: boolean): CompiledPipeline {
    const key = `${parallelism}/${fusion}`;
    let c = this.compiled.get(key);
    if (!c) {
      c = this.pipeline.compile({ parallelism, fusion });
      this.compiled.set(key, c);
    }
    return c;
  }

  /** The compiled pipeline for a job, or a PlanMismatchError naming both hashes. */
  resolve(key: PlanKey): CompiledPipeline {
    const c = this.compile(key.parallelism, key.fusion);
    if (c.plan.hash !== key.planHash) throw new PlanMismatchError(key.planHash, c.plan.hash, this.pipeline.name);
    return c;
  }

  /** The user function of `node`, opened (once per process) before it is returned. */
  async function<T>(compiled: CompiledPipeline, node: LogicalNode): Promise<T> {
    const fn = compiled.functions.get(node.id);
    if (fn && typeof fn === "object" && !Array.isArray(fn)) {
      let ready = this.opened.get(fn);
      if (!ready) {
        const rich = fn as RichFunction;
        const ctx: FunctionContext = {
          operatorId: node.id,
          operatorName: node.name,
          pipeline: compiled.plan.pipeline,
          parallelism: node.parallelism ?? compiled.plan.parallelism,
          logger: this.logger.child({ operator: node.id }),
          service: <S>(name: string) => this.services.get<S>(name, node.name),
        };
        ready = Promise.resolve(rich.open?.(ctx)).then(() => {
          if (typeof rich.close === "function") this.toClose.push(rich);
        });
        this.opened.set(fn, ready);
        ready.catch(() => this.opened.delete(fn));
      }
      await ready;
    }
    return fn as T;
  }

  /** Closes every opened function, then the services (worker shutdown); errors are logged, not thrown. */
  async close(): Promise<void> {
    for (const fn of this.toClose.splice(0)) {
      try {
        await fn.close?.();
      } catch (err) {
        this.logger.error({ err }, "close() of a user function failed");
      }
    }
    this.opened.clear();
    await this.services.close();
  }
}
