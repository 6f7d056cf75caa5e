/**
 * A streaming stage unit that meets a spent `llm.budget` window fails with `LLM_BUDGET_PAUSED`,
 * and Temporal retries it once the window frees (the failure's next retry delay). Before it fails,
 * the worker tells the unit's partition workflow by signal: the workflow's progress then shows the
 * pause (`sage status`), and the shim stops fetching the workflow's partitions until then. Best
 * effort: a signal that does not go through only leaves the pause unseen.
 */
import type { Context } from "@temporalio/activity";
import type { Logger } from "pino";
import type { BudgetPausedError } from "../../core/errors.js";
import { budgetPauseSignal } from "../../workflows/contract.js";

/** Signals the pause to the workflow that runs this activity. */
export async function noticeBudgetPause(ctx: Context, err: BudgetPausedError, logger: Logger): Promise<void> {
  const execution = ctx.info.workflowExecution;
  if (!execution) return;
  try {
    const { workflowId, runId } = execution;
    await ctx.client.workflow.getHandle(workflowId, runId).signal(budgetPauseSignal, { reason: err.reason, until: err.until });
  } catch (e) {
    logger.warn({ err: (e as Error).message }, "could not tell the workflow about the llm budget pause");
  }
}
