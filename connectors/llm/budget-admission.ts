/**
 * `llm.budget`: admits a model call only when its worst case (estimated prompt tokens plus its
 * `max_tokens`, priced by `llm.prices`) fits every limit of its job and its pipeline, counting the
 * durable ledgers (`BudgetLedger`) and the calls this process admitted that have not been charged
 * yet. Otherwise, by `llm.budget.policy`: `pause` throws `BudgetPausedError` with the time the
 * windows free enough for the call (`BudgetExceededError` when no window does: a `dollars-total`
 * limit, or a call larger than the limit); `dead-letter` and `downgrade` throw
 * `BudgetExceededError` (the model client tries the cheaper model on `downgrade`). A call whose
 * request is already charged (a retried activity, a restarted worker) is admitted at no cost and
 * not charged again.
 */
import { join } from "node:path";
import type { SageConfig } from "../../core/config/schema.js";
import { BudgetExceededError, BudgetPausedError } from "../../core/errors.js";
import { jobFileName } from "../../core/names.js";
import { budgetRemaining } from "../../monitoring/llm-metrics.js";
import { BUDGET_WINDOWS, BudgetLedger, type BudgetWindows, type Spend } from "./budget-ledger.js";
import type { Clock } from "./rate-limiter.js";

type Limits = SageConfig["llm"]["budget"]["job"];

/** What one call may use at most, and who makes it. */
export interface BudgetCall {
  pipeline: string;
  jobId: string;
  operator: string;
  model: string;
  /** The request's hash: the charge's key. */
  requestKey: string;
  /** Upper estimate of the call's tokens (prompt plus `max_tokens`). */
  tokens: number;
  /** Upper estimate of its cost in USD. */
  cost: number;
}

/** An admitted call not yet charged. */
export interface Admission {
  readonly call: BudgetCall;
  /** False when the request was charged before: nothing is charged again. */
  readonly charges: boolean;
}

/** Where the ledgers of a data dir are. */
export function budgetLedgerPaths(dataDir: string, pipeline: string, jobId: string): { job: string; pipeline: string } {
  const dir = join(dataDir, "llm", "budget", pipeline);
  return { job: join(dir, "jobs", `${jobFileName(jobId)}.jsonl`), pipeline: join(dir, "pipeline.jsonl") };
}

/** A limit a call would cross, and when the window would have let go of enough spend for it (null: never). */
interface Crossing {
  budget: "job" | "pipeline";
  limit: keyof Limits;
  detail: string;
  until: number | null;
}

/**
 * Tests only, not configuration: an environment variable that divides the budget windows (360
 * makes the hour 10 s), so a test sees a window free without waiting an hour.
 */
export const WINDOW_DIVISOR_ENV = "SAGE_TEST_LLM_BUDGET_WINDOW_DIVISOR";

/** The budget windows: the real minute and hour, unless a test divides them (`WINDOW_DIVISOR_ENV`). */
export function budgetWindows(env: NodeJS.ProcessEnv = process.env): BudgetWindows {
  const divisor = Number(env[WINDOW_DIVISOR_ENV] ?? 1);
  if (!Number.isFinite(divisor) || divisor <= 0) throw new RangeError(`${WINDOW_DIVISOR_ENV} must be a positive number, got "${env[WINDOW_DIVISOR_ENV]}"`);
  return { minute: BUDGET_WINDOWS.minute / divisor, hour: BUDGET_WINDOWS.hour / divisor };
}

const isLimited = (l: Limits) => l["tokens-per-minute"] > 0 || l["dollars-per-hour"] > 0 || l["dollars-total"] > 0;

/** The budgets of one worker process. */
export class LlmBudget {
  private readonly ledgers = new Map<string, BudgetLedger>();
  /** Admitted, not yet charged, per ledger path. */
  private readonly pending = new Map<string, Set<Admission>>();
  constructor(
    private readonly config: SageConfig["llm"]["budget"],
    private readonly dataDir: string,
    private readonly clock: Clock,
    /** The minute and the hour of the limits (shorter only in tests: `budgetWindows`). */
    private readonly windows: BudgetWindows = budgetWindows(),
  ) {}

  /** Whether any limit is set (else calls skip the ledgers). */
  get enabled(): boolean {
    return isLimited(this.config.job) || isLimited(this.config.pipeline);
  }

  private ledger(path: string): BudgetLedger {
    let l = this.ledgers.get(path);
    if (!l) {
      l = new BudgetLedger(path);
      this.ledgers.set(path, l);
    }
    return l;
  }

  private scopes(call: BudgetCall) {
    const paths = budgetLedgerPaths(this.dataDir, call.pipeline, call.jobId);
    return [
      { name: "job" as const, limits: this.config.job, path: paths.job, key: call.requestKey, label: `job ${call.pipeline}/${call.jobId}` },
      {
        name: "pipeline" as const,
        limits: this.config.pipeline,
        path: paths.pipeline,
        key: `${call.jobId} ${call.requestKey}`,
        label: `pipeline ${call.pipeline}`,
      },
    ].filter((s) => isLimited(s.limits));
  }

  /** Spend of a ledger plus the calls admitted against it and not yet charged. */
  private committed(path: string): Spend {
    const spend = this.ledger(path).spend(this.clock.now(), this.windows);
    for (const a of this.pending.get(path) ?? []) {
      spend.tokensLastMinute += a.call.tokens;
      spend.dollarsLastHour += a.call.cost;
      spend.dollarsTotal += a.call.cost;
    }
    return spend;
  }

  /** Admits a call, or throws what the policy says for the limits it would cross (see the file comment). */
  async admit(call: BudgetCall): Promise<Admission> {
    const scopes = this.scopes(call);
    for (const s of scopes) await this.ledger(s.path).refresh();
    // From here to the end nothing awaits: checks and reservation are one step in this process.
    if (scopes.length > 0 && scopes.every((s) => this.ledger(s.path).has(s.key))) return { call, charges: false };
    const crossings: Crossing[] = [];
    const now = this.clock.now();
    for (const s of scopes) {
      const spent = this.committed(s.path);
      const over = (limit: keyof Limits, used: number, adding: number, unit: string, window: { ms: number; of: "tokens" | "cost" } | null): void => {
        const max = s.limits[limit];
        if (max <= 0 || used + adding <= max) return;
        const detail = `${s.label} ${limit} ${max}: spent ${round(used)}${unit}, the ${call.operator} call to ${call.model} may use ${round(adding)}${unit} more`;
        // Calls admitted and not yet charged leave the window a window after now at the earliest.
        const until = window && adding <= max ? (this.ledger(s.path).freedAt(now, window.ms, window.of, used + adding - max) ?? now + window.ms) : null;
        crossings.push({ budget: s.name, limit, detail, until });
      };
      over("tokens-per-minute", spent.tokensLastMinute, call.tokens, " tokens", { ms: this.windows.minute, of: "tokens" });
      over("dollars-per-hour", spent.dollarsLastHour, call.cost, " USD", { ms: this.windows.hour, of: "cost" });
      over("dollars-total", spent.dollarsTotal, call.cost, " USD", null);
    }
    if (crossings.length > 0) throw this.refusal(crossings);
    const admission = { call, charges: true };
    for (const s of scopes) {
      let set = this.pending.get(s.path);
      if (!set) this.pending.set(s.path, (set = new Set()));
      set.add(admission);
    }
    return admission;
  }

  /** The error for a refused call: a pause when every crossed limit frees with time under `pause`, else a dead letter. */
  private refusal(crossings: Crossing[]): Error {
    const [first] = crossings as [Crossing, ...Crossing[]];
    if (this.config.policy !== "pause") return new BudgetExceededError(first.budget, first.limit, first.detail);
    const never = crossings.find((c) => c.until === null);
    if (never) {
      const why = never.limit === "dollars-total" ? "a dollars-total budget does not free with time" : "the call alone is larger than the limit";
      return new BudgetExceededError(never.budget, never.limit, `${never.detail} (policy pause: ${why}, so the record goes to the dead letters)`);
    }
    return new BudgetPausedError(Math.max(...crossings.map((c) => c.until!)), crossings.map((c) => c.detail).join("; "));
  }

  /** Charges what an admitted call used (once per request key, durably), or releases it when it used nothing. */
  async settle(admission: Admission, used: { tokens: number; cost: number } | null): Promise<void> {
    const { call } = admission;
    for (const s of this.scopes(call)) {
      try {
        if (admission.charges && used) {
          await this.ledger(s.path).charge({
            key: s.key,
            at: this.clock.now(),
            model: call.model,
            operator: call.operator,
            tokens: used.tokens,
            cost: used.cost,
          });
        }
      } finally {
        this.pending.get(s.path)?.delete(admission);
      }
      this.report(s.name, s.limits, s.path, call);
    }
  }

  private report(scope: "job" | "pipeline", limits: Limits, path: string, call: BudgetCall): void {
    const spent = this.committed(path);
    const job = scope === "job" ? call.jobId : "";
    if (limits["tokens-per-minute"] > 0) budgetRemaining(call.pipeline, job, scope, "tokens-per-minute", limits["tokens-per-minute"] - spent.tokensLastMinute);
    if (limits["dollars-per-hour"] > 0) budgetRemaining(call.pipeline, job, scope, "dollars-per-hour", limits["dollars-per-hour"] - spent.dollarsLastHour);
    if (limits["dollars-total"] > 0) budgetRemaining(call.pipeline, job, scope, "dollars-total", limits["dollars-total"] - spent.dollarsTotal);
  }

  /** What a job (or, with `jobId` null, its pipeline) has spent, as the ledger on this data dir says. */
  async spend(pipeline: string, jobId: string | null): Promise<Spend> {
    const paths = budgetLedgerPaths(this.dataDir, pipeline, jobId ?? "_");
    const ledger = this.ledger(jobId === null ? paths.pipeline : paths.job);
    await ledger.refresh();
    return ledger.spend(this.clock.now(), this.windows);
  }
}

const round = (n: number) => Math.round(n * 1e6) / 1e6;
