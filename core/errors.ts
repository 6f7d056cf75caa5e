/**
 * Error classes shared by every layer. Each error has a stable `code` a program can test and says
 * whether retrying can help (`retriable`), after kafkajs' `KafkaJSError` and Restate's `TerminalError`.
 */

/** Base class of every error Sage raises on purpose. */
export class SageError extends Error {
  /** Stable machine-readable code, e.g. `DUPLICATE_OPERATOR`. */
  readonly code: string;
  /** Whether retrying the same work may succeed. */
  readonly retriable: boolean;

  constructor(code: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/**
 * Thrown by a user function to say "this record can never succeed": it goes straight to the
 * dead-letter output, without the operator's retries.
 */
export class NonRetryableError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("NON_RETRYABLE", message, { retriable: false, ...options });
  }
}

/** A pipeline definition is wrong (duplicate names, bad parallelism, a dangling stream, ...). */
export class PipelineDefinitionError extends SageError {
  constructor(message: string) {
    super("PIPELINE_DEFINITION", message);
  }
}

/** Configuration failed validation; the message names the key, the value and what was expected. */
export class ConfigError extends SageError {
  constructor(message: string) {
    super("CONFIG", message);
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
    );
  }
}

/** A user function produced a value that cannot be serialized (function, BigInt, cycle, ...). */
export class NonSerializableValueError extends SageError {
  constructor(message: string) {
    super("NON_SERIALIZABLE", message);
  }
}

/** A record or batch is larger than the payload budget of workflow history. */
export class PayloadBudgetError extends SageError {
  constructor(message: string) {
    super("PAYLOAD_BUDGET", message);
  }
}

/** A source cannot be read (missing file, permission, ...). */
export class SourceError extends SageError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super("SOURCE", message, options);
  }
}

/** A sink cannot be written or committed. */
export class SinkError extends SageError {
  constructor(message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super("SINK", message, options);
  }
}

/** The Temporal server cannot be found, started or reached. */
export class ServerUnavailableError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("SERVER_UNAVAILABLE", message, { retriable: true, ...options });
  }
}

/**
 * A model endpoint is busy or failing (429, 5xx, no connection). It fails the stage activity, which
 * Temporal retries (after `retryAfterMs` when the endpoint said `Retry-After`); answers already
 * received come from the response cache on the retry.
 */
export class ModelUnavailableError extends SageError {
  constructor(
    message: string,
    readonly retryAfterMs: number | null,
    options: { cause?: unknown } = {},
  ) {
    super("MODEL_UNAVAILABLE", message, { retriable: true, ...options });
  }
}

/** A recorded re-run (`sage rerun --recorded`) needed a model answer that is not in the record. */
export class NotRecordedError extends SageError {
  constructor(message: string) {
    super("NOT_RECORDED", message);
  }
}

/**
 * Codes of errors that leave the record's operator and fail the stage activity instead of
 * dead-lettering one record: fatal ones fail the job, retriable ones are retried by Temporal.
 */
export const JOB_FATAL_CODES: readonly string[] = [
  "PLAN_MISMATCH",
  "NON_SERIALIZABLE",
  "PAYLOAD_BUDGET",
  "SOURCE",
  "SINK",
  "MODEL_UNAVAILABLE",
  "NOT_RECORDED",
];
