/**
 * Calls user functions on records with the operator's retry policy: ONE retry loop for single
 * records and for `mapBatch` batches. An error that fails the job (`failsJob`) leaves at once; a
 * record whose error is not retriable, or whose tries are used up, goes to the dead letters.
 */
import type { RecordContext } from "../../core/api/context.js";
import { failsJob, isRetriable, NonRetryableError, OperatorTimeoutError } from "../../core/errors.js";
import type { LogicalNode, RetryPolicy } from "../../core/plan/logical.js";
import type { DeadLetters } from "./dead-letters.js";
import { pushAll, type Push } from "./push.js";
import type { StageUnit } from "./unit.js";
import { operatorTryFailed } from "../../monitoring/stage-metrics.js";

/** One call of a user function on one record (or on a batch, for `mapBatch`). */
export type Call = (value: unknown, ctx: RecordContext) => unknown;
/** What happens with a call's result; gets the record too, so it needs no closure per record. */
export type Then = (result: unknown, value: unknown) => void | Promise<void>;

/** How a retried call ended: its result, or the error it gave up on after `attempts` tries. */
type Outcome = { ok: true; result: unknown } | { ok: false; error: unknown; attempts: number };

function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxIntervalMs, policy.initialIntervalMs * policy.backoffCoefficient ** (attempt - 1));
}

/** `promise`, or an `OperatorTimeoutError` once `ms` passed (0: no limit). */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OperatorTimeoutError(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The results of a `mapBatch` call, checked: one per record, or a `NonRetryableError`. */
function batchResults(node: LogicalNode, size: number, out: unknown): unknown[] {
  if (!Array.isArray(out) || out.length !== size) {
    throw new NonRetryableError(`mapBatch "${node.name}" must return an array of ${size} result(s), got ${Array.isArray(out) ? `${out.length}` : typeof out}`);
  }
  return out;
}

/** Invokes user functions for one stage run. */
export class RecordInvoker {
  constructor(
    private readonly unit: StageUnit,
    private readonly deadLetters: DeadLetters,
  ) {}

  /**
   * Calls `call` for one record and hands its result to `then`. The first try runs synchronously
   * when the user function is synchronous (the common case: no promise per record); a failure moves
   * to the retry loop, which dead-letters the record when it gives up. `call` and `then` take the
   * record as an argument, so an operator builds them once, not per record.
   */
  invoke(node: LogicalNode, ctx: RecordContext, value: unknown, call: Call, then: Then): void | Promise<void> {
    this.unit.tick();
    let result: unknown;
    try {
      result = call(value, ctx);
    } catch (err) {
      return this.retryRecord(node, value, call, then, err);
    }
    if (result instanceof Promise) {
      return withTimeout(result, node.timeoutMs, `operator "${node.name}"`).then(
        (r) => then(r, value),
        (err: unknown) => this.retryRecord(node, value, call, then, err),
      );
    }
    return then(result, value);
  }

  /**
   * One `mapBatch` call over `items` with the operator's retry policy, its results pushed to `emit`
   * (`at(i)` first, when given, before the result of item `i`: lineage names its record).
   * When the batch fails for good, each record is tried alone, so only the records that fail by
   * themselves go to the dead letters.
   */
  async invokeBatch(node: LogicalNode, items: unknown[], call: Call, emit: Push, at?: (i: number) => void): Promise<void> {
    const outcome = await this.retrying(node, null, (attempt) => {
      const out = call(items, this.unit.recordContext(node, attempt));
      return out instanceof Promise ? out.then((r) => batchResults(node, items.length, r)) : batchResults(node, items.length, out);
    });
    if (outcome.ok && !at) return pushAll(outcome.result as unknown[], emit);
    if (outcome.ok) {
      for (const [i, result] of (outcome.result as unknown[]).entries()) {
        at!(i);
        const p = emit(result);
        if (p) await p;
      }
      return;
    }
    if (items.length > 1) {
      for (const [i, item] of items.entries()) await this.invokeBatch(node, [item], call, emit, at && (() => at(i)));
      return;
    }
    // The dead letter is its record's (its source, key and lineage), as a result would be.
    at?.(0);
    await this.deadLetters.write(node, items[0], outcome.error, outcome.attempts);
  }

  /** The record's first try failed with `first`: retries it, then hands on its result or dead-letters it. */
  private async retryRecord(node: LogicalNode, value: unknown, call: Call, then: Then, first: unknown): Promise<void> {
    const outcome = await this.retrying(node, { error: first }, (attempt) => call(value, this.unit.recordContext(node, attempt)));
    if (outcome.ok) return then(outcome.result, value);
    await this.deadLetters.write(node, value, outcome.error, outcome.attempts);
  }

  /**
   * The retry loop: tries `attempt(n)` (n = 1, 2, ...) until it succeeds, an error fails the job
   * (thrown), or the policy gives up: the error is not retriable or the tries are used up. `failed`
   * is the error of a first try made by the caller; the loop then starts at the second.
   */
  private async retrying(node: LogicalNode, failed: { error: unknown } | null, attempt: (n: number) => unknown): Promise<Outcome> {
    let tries = 0;
    let error = failed?.error;
    if (failed) tries = 1;
    for (;;) {
      if (tries > 0) {
        if (failsJob(error)) throw error;
        const giveUp = !isRetriable(error) || tries >= node.retry.maxAttempts;
        operatorTryFailed(this.unit.input, node.id, !giveUp);
        if (giveUp) return { ok: false, error, attempts: tries };
        await new Promise((r) => setTimeout(r, backoffMs(node.retry, tries)));
        this.unit.host.heartbeat();
      }
      tries++;
      try {
        const result = attempt(tries);
        return { ok: true, result: result instanceof Promise ? await withTimeout(result, node.timeoutMs, `operator "${node.name}"`) : result };
      } catch (err) {
        error = err;
      }
    }
  }
}
