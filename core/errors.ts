/**
 * Error classes shared by every layer. Each error has a stable `code` a program can test, says
 * whether retrying can help (`retriable`), after kafkajs' `KafkaJSError` and Restate's
 * `TerminalError`, and says what it fails (`scope`): one record, or the job's stage attempt.
 */

/**
 * What an error thrown while a stage runs fails. `record`: only the record in hand, which the
 * operator retries (when `retriable`) and then sends to the dead letters. `job`: the error leaves
 * the operator and fails the stage activity, which Temporal retries when `retriable` (the job goes
 * on) and otherwise fails the job.
 */
export type ErrorScope = "record" | "job";

/** Options every Sage error takes. */
export interface SageErrorOptions {
  /** Whether retrying the same work may succeed (default false). */
  retriable?: boolean;
  /** What the error fails (default `record`). */
  scope?: ErrorScope;
  /** Whether the caller's input is wrong: flags, configuration, pipeline, parameters, job id (default false). */
  input?: boolean;
  /** The error this one wraps. */
  cause?: unknown;
}

/** Base class of every error Sage raises on purpose. */
export class SageError extends Error {
  /** Stable machine-readable code, e.g. `DUPLICATE_OPERATOR`. */
  readonly code: string;
  /** Whether retrying the same work may succeed. */
  readonly retriable: boolean;
  /** What the error fails: the record in hand (dead letters) or the job's stage attempt. */
  readonly scope: ErrorScope;
  /** Whether the caller's input is wrong (the CLI exits 2, as for a usage error): fixing it helps, retrying does not. */
  readonly input: boolean;

  constructor(code: string, message: string, options: SageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.scope = options.scope ?? "record";
    this.input = options.input ?? false;
  }
}

/**
 * True for an error that fails the job's stage attempt rather than one record. Only our own errors
 * can: anything else a user function throws is that record's failure.
 */
export function failsJob(err: unknown): err is SageError {
  return err instanceof SageError && err.scope === "job";
}

/** True for an error that retrying the same record or activity may cure (foreign errors may be). */
export function isRetriable(err: unknown): boolean {
  return !(err instanceof SageError) || err.retriable;
}

/**
 * Thrown by a user function to say "this record can never succeed": it goes straight to the
 * dead-letter output, without the operator's retries.
 */
export class NonRetryableError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("NON_RETRYABLE", message, { retriable: false, scope: "record", ...options });
  }
}

/** A model call would cross an `llm.budget` limit (and no policy found a way in): its record goes to the dead letters. */
export class BudgetExceededError extends NonRetryableError {
  constructor(
    /** The budget crossed: `job` or `pipeline`. */
    readonly budget: "job" | "pipeline",
    /** The limit crossed: `tokens-per-minute`, `dollars-per-hour` or `dollars-total`. */
    readonly limit: string,
    /** What was crossed and by which call, without the "llm budget exceeded" prefix. */
    readonly detail: string,
  ) {
    super(`llm budget exceeded: ${detail}`);
  }
}

/** Failure type of `BudgetPausedError` in Temporal: a workflow that sees it waits on a timer and runs the unit again. */
export const BUDGET_PAUSED = "LLM_BUDGET_PAUSED";

/**
 * A model call would cross a windowed `llm.budget` limit under the `pause` policy: the stage unit
 * fails, and the workflow waits on a durable timer until `until`, when the window has let go of
 * enough spend, then runs the unit again (answers already paid come from the response cache).
 */
export class BudgetPausedError extends SageError {
  constructor(
    /** When the window frees enough budget for the call, ms since the epoch. */
    readonly until: number,
    /** What was crossed and by which call. */
    readonly reason: string,
  ) {
    super(BUDGET_PAUSED, `llm budget paused until ${new Date(until).toISOString()}: ${reason}`, { retriable: true, scope: "job" });
  }
}

/** A pipeline definition is wrong (duplicate names, bad parallelism, a dangling stream, a bad tag, ...). */
export class PipelineDefinitionError extends SageError {
  constructor(message: string) {
    super("PIPELINE_DEFINITION", message, { input: true });
  }
}

/** A function asked for a service (`ctx.service(name)`) that the pipeline never registered. */
export class UnknownServiceError extends SageError {
  constructor(
    readonly service: string,
    readonly operator: string,
    readonly registered: readonly string[],
  ) {
    super(
      "UNKNOWN_SERVICE",
      `operator "${operator}" asked for service "${service}", but the worker has no service of that name; ` +
        `registered: ${registered.length > 0 ? registered.map((n) => `"${n}"`).join(", ") : "none"} (register it with env.registerService("${service}", factory))`,
      { scope: "job", input: true },
    );
  }
}

/** Configuration failed validation; the message names the key, the value and what was expected. */
export class ConfigError extends SageError {
  constructor(message: string) {
    super("CONFIG", message, { input: true });
  }
}

/** The stage thread running a unit died (a user function called `process.exit`, or it ran out of memory): the attempt fails and is retried. */
export class StageThreadError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("STAGE_THREAD_DIED", message, { retriable: true, scope: "job", ...options });
  }
}

/** A worker was asked to run a plan it does not serve. */
export class PlanMismatchError extends SageError {
  constructor(
    readonly expectedHash: string,
    readonly actualHash: string,
    pipeline: string,
  ) {
    super(
      "PLAN_MISMATCH",
      `worker serves pipeline "${pipeline}" with plan hash ${actualHash}, but the job was submitted with plan hash ${expectedHash}; ` +
        `start a worker from the same pipeline module version that submitted the job`,
      { scope: "job" },
    );
  }
}

/** A user function produced a value that cannot be serialized (function, BigInt, cycle, ...). */
export class NonSerializableValueError extends SageError {
  constructor(message: string) {
    super("NON_SERIALIZABLE", message, { scope: "job" });
  }
}

/** A record or batch is larger than the payload budget of workflow history. */
export class PayloadBudgetError extends SageError {
  constructor(message: string) {
    super("PAYLOAD_BUDGET", message, { scope: "job" });
  }
}

/** A source or a stage's input cannot be read (missing file, permission, ...). */
export class SourceError extends SageError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super("SOURCE", message, { ...options, scope: "job" });
  }
}

/** A sink cannot be written or committed. */
export class SinkError extends SageError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super("SINK", message, { ...options, scope: "job" });
  }
}

/** The Temporal server cannot be found, started or reached. */
export class ServerUnavailableError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("SERVER_UNAVAILABLE", message, { retriable: true, scope: "job", ...options });
  }
}

/**
 * A model endpoint is busy or failing (429, 5xx, no connection). That is no record's fault, so it
 * fails the stage attempt (`scope: "job"`) rather than dead-lettering records, and Temporal retries
 * the attempt (`retriable`, after `retryAfterMs` when the endpoint said `Retry-After`); answers
 * already received come from the response cache on the retry.
 */
export class ModelUnavailableError extends SageError {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
    options: { cause?: unknown } = {},
  ) {
    super("MODEL_UNAVAILABLE", message, { retriable: true, scope: "job", ...options });
  }
}

/** A recorded re-run (`sage rerun --recorded`) needed a model answer that is not in the record. */
export class NotRecordedError extends SageError {
  constructor(message: string) {
    super("NOT_RECORDED", message, { scope: "job" });
  }
}

/** A job parameter the plan refers to was not given and has no default. */
export class MissingParameterError extends SageError {
  constructor(
    /** The parameter's name, as in `--param NAME=...`. */
    readonly parameter: string,
    message: string,
  ) {
    super("MISSING_PARAMETER", message, { scope: "job", input: true });
  }
}

/** An operator's call on one record took longer than the operator's timeout; the record is retried. */
export class OperatorTimeoutError extends SageError {
  constructor(message: string) {
    super("OPERATOR_TIMEOUT", message, { retriable: true });
  }
}

/** A Kafka broker cannot be started, reached or asked (the dev broker, a connection, a request). */
export class BrokerUnavailableError extends SageError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super("BROKER_UNAVAILABLE", message, { retriable: true, ...options, scope: "job" });
  }
}

/** A vector index is missing, or cannot be built from what was given. */
export class VectorIndexError extends SageError {
  constructor(message: string) {
    super("VECTOR_INDEX", message, { scope: "job" });
  }
}

/** A memory or recall an agent memory cannot take (a key too long, a vector of another dimension): its record goes to the dead letters. */
export class AgentMemoryError extends NonRetryableError {
  override readonly code = "AGENT_MEMORY";
}

/** A state the code rules out was reached: a bug in Sage, never the user's input. */
export class InternalError extends SageError {
  constructor(message: string) {
    super("INTERNAL", message, { scope: "job" });
  }
}

/**
 * A command or an API call was given something it cannot act on: a malformed flag, a job id that
 * names no job or several, a bounded pipeline where a streaming one is needed (or the reverse).
 */
export class UsageError extends SageError {
  constructor(message: string) {
    super("USAGE", message, { input: true });
  }
}

/**
 * A job id that already names a job: a job id is run once, so a second submit neither starts the
 * job again nor reports the earlier run's output as its own. The fields describe the earlier run.
 */
export class JobExistsError extends SageError {
  constructor(
    readonly workflowId: string,
    /** The earlier (latest) run of the job. */
    readonly runId: string,
    /** Its Temporal status: RUNNING, COMPLETED, FAILED, ... */
    readonly status: string,
    /** The parameters it was submitted with. */
    readonly params: Readonly<Record<string, string>>,
    message: string,
  ) {
    super("JOB_EXISTS", message, { input: true });
  }
}

/** A local model's files are not installed (`bash scripts/install-models.sh` installs them). */
export class ModelNotInstalledError extends SageError {
  constructor(
    /** The missing file. */
    readonly path: string,
    message: string,
  ) {
    super("MODEL_NOT_INSTALLED", message, { scope: "job" });
  }
}
