/**
 * What user functions see of the runtime. Declared here, implemented in `activities/` (after
 * Restate's `context.ts` / `context_impl.ts` split): this file reads like the spec.
 */
import { PipelineDefinitionError } from "../errors.js";
import { NAME_CHARS, isName } from "../names.js";

/** A minimal structured logger (pino-compatible) handed to user functions. */
export interface FunctionLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Given to `open(ctx)`: once per operator instance per worker process. */
export interface FunctionContext {
  /** Stable operator id (the `uid`, else the `name`). */
  readonly operatorId: string;
  /** Operator name as shown in plans and the Web UI. */
  readonly operatorName: string;
  /** Pipeline name. */
  readonly pipeline: string;
  /** Effective parallelism of the operator. */
  readonly parallelism: number;
  /** Logger bound to pipeline and operator. */
  readonly logger: FunctionLogger;
  /**
   * The service registered as `name` (`env.registerService`; the built-in `"llm"` is always there),
   * opened on first use, once per worker process (once per stage thread in a stage thread).
   * Rejects with `UnknownServiceError` for a name nobody registered.
   */
  service<T>(name: string): Promise<T>;
}

/** Given with every record. */
export interface RecordContext {
  /** Stable operator id. */
  readonly operatorId: string;
  /** Job id of the run this record belongs to. */
  readonly jobId: string;
  /** Job parameters given at submit time. */
  readonly params: Readonly<Record<string, string>>;
  /** 1 on the first try of this record in this operator, 2 on its first retry, ... */
  readonly attempt: number;
  /** Logger bound to job, stage, operator and attempt. */
  readonly logger: FunctionLogger;
  /** The service registered as `name`, as in `FunctionContext.service` (one instance per worker process or stage thread). */
  service<T>(name: string): Promise<T>;
}

/** A typed tag naming a side output of a `process` operator. */
export class OutputTag<T> {
  /** Phantom field that carries the element type; never set. */
  declare readonly __type?: T;
  constructor(readonly id: string) {
    if (!isName(id)) {
      throw new PipelineDefinitionError(`OutputTag id "${id}" must match ${NAME_CHARS}`);
    }
  }
}

/** Given to `process(value, ctx)`: emit to the main output or to a side output. */
export interface ProcessContext<O> extends RecordContext {
  /** Emit a record to the main output. */
  emit(value: O): void;
  /** Emit a record to the side output named by `tag`. */
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** Given to a sink with every record: the shard key makes user sinks idempotent if they want. */
export interface SinkContext extends RecordContext {
  /** Stable key of the shard (split or batch) this record belongs to; equal across retries. */
  readonly shard: string;
}

/** Given to a bounded user source when it enumerates and reads its splits. */
export interface SourceContext {
  /** Job parameters given at submit time. */
  readonly params: Readonly<Record<string, string>>;
  /** Parallelism of the source operator. */
  readonly parallelism: number;
  /** Logger bound to job and source. */
  readonly logger: FunctionLogger;
}
