/**
 * The `pause` policy of `llm.budget` in workflow code: a stage unit whose model call would cross a
 * windowed budget fails with the `LLM_BUDGET_PAUSED` failure (`BudgetPausedError`, carrying when
 * the window frees enough). The workflow then waits on a durable timer, says so in its progress
 * (`sage status`: "paused by llm budget until <time>"), and runs the unit again; the answers the
 * unit already paid for come from the response cache. Bounded jobs only: in streaming jobs and
 * in histories recorded before this, Temporal's activity retry waits for the same time instead
 * (the failure's next retry delay), while the partition workflow holds the batch.
 */
import { ActivityFailure, ApplicationFailure, patched, sleep } from "@temporalio/workflow";
import { BUDGET_PAUSED } from "../core/errors.js";
import type { LlmBudgetPause } from "../core/plan/job.js";
import type { StageActivityOptions } from "./activity-stubs.js";

/** Patch id of waiting for the budget in the workflow (histories recorded before it replay as they were). */
export const BUDGET_PAUSE_PATCH = "sage-budget-pause";

/** The shortest wait: a unit never spins on a window that is about to free. */
const MIN_WAIT_MS = 1_000;

/** What a `LLM_BUDGET_PAUSED` failure's details say. */
interface PauseDetails {
  until: number;
  reason: string;
}

/** The pause a stage activity's failure asks for, or null for any other failure. */
function pauseOf(err: unknown): PauseDetails | null {
  if (!(err instanceof ActivityFailure) || !(err.cause instanceof ApplicationFailure) || err.cause.type !== BUDGET_PAUSED) return null;
  const details = err.cause.details?.[0] as Partial<PauseDetails> | undefined;
  return { until: typeof details?.until === "number" ? details.until : 0, reason: details?.reason ?? err.cause.message };
}

/** The stage units of one workflow that wait for the budget; the progress shows the latest pause. */
export class BudgetPauses {
  private waiting = 0;

  private constructor(private readonly progress: { llmBudgetPause?: LlmBudgetPause }) {}

  /** The pauses of a workflow whose progress is `progress`, or null in a history recorded before them. */
  static of(progress: { llmBudgetPause?: LlmBudgetPause }): BudgetPauses | null {
    return patched(BUDGET_PAUSE_PATCH) ? new BudgetPauses(progress) : null;
  }

  /** Stage activity options under which a pause reaches the workflow at once instead of Temporal's retry. */
  static options(options: StageActivityOptions): StageActivityOptions {
    const withType = <O extends { retry?: { nonRetryableErrorTypes?: string[] } }>(o: O): O => ({
      ...o,
      retry: { ...o.retry, nonRetryableErrorTypes: [...(o.retry?.nonRetryableErrorTypes ?? []), BUDGET_PAUSED] },
    });
    return "local" in options ? { local: withType(options.local) } : { activity: withType(options.activity) };
  }

  /** Runs `unit` until it does not pause; each pause waits on a durable timer until the budget frees. */
  async run<T>(unit: () => Promise<T>): Promise<T> {
    for (;;) {
      let pause: PauseDetails | null;
      try {
        return await unit();
      } catch (err) {
        pause = pauseOf(err);
        if (!pause) throw err;
      }
      this.waiting++;
      this.progress.llmBudgetPause = { reason: pause.reason, until: new Date(Math.max(pause.until, Date.now())).toISOString(), units: this.waiting };
      try {
        await sleep(Math.max(MIN_WAIT_MS, pause.until - Date.now()));
      } finally {
        if (--this.waiting === 0) delete this.progress.llmBudgetPause;
        else this.progress.llmBudgetPause.units = this.waiting;
      }
    }
  }
}
