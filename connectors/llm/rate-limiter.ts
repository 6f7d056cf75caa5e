/**
 * Requests-per-minute and tokens-per-minute limits of each model, shared by a worker's operators:
 * one pair of token buckets per model (its own limits from `llm.limits.<model>`, else the global
 * `llm.requests-per-minute` / `llm.tokens-per-minute`), a pause per model after a 429's Retry-After
 * (other models keep going), and token charges settled against the usage the endpoint reports.
 */

/** Time as the limiter sees it; tests inject a manual one. */
export interface Clock {
  /** Milliseconds since some fixed point. */
  now(): number;
  /** Resolves after `ms` of this clock's time. */
  sleep(ms: number): Promise<void>;
}

/** The wall clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** Limits of one model (0 = no limit). */
export interface ModelLimits {
  requestsPerMinute: number;
  tokensPerMinute: number;
}

/** A token bucket that refills continuously; its level may go below 0 when a call used more than it took. */
export class Bucket {
  private level: number;
  private last: number;
  constructor(
    readonly perMinute: number,
    private readonly clock: Clock,
  ) {
    this.level = perMinute;
    this.last = clock.now();
  }
  private refill(): void {
    const now = this.clock.now();
    this.level = Math.min(this.perMinute, this.level + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
  }
  /** Ms until `amount` is available (0 = now); takes it when available. A call bigger than the bucket waits for a full bucket. */
  take(amount: number): number {
    this.refill();
    const want = Math.min(amount, this.perMinute);
    if (this.level >= want) {
      this.level -= amount;
      return 0;
    }
    return Math.ceil(((want - this.level) * 60_000) / this.perMinute);
  }
  /** Puts back (positive) or charges (negative) an amount, e.g. the difference between an estimate and the real use. */
  adjust(amount: number): void {
    this.refill();
    this.level = Math.min(this.perMinute, this.level + amount);
  }
  /** What is available now. */
  available(): number {
    this.refill();
    return this.level;
  }
}

/** What one model's limiter did, in this process. */
export interface ModelWaits {
  /** Calls that had to wait (bucket or pause). */
  calls: number;
  /** Total wait, ms of the limiter's clock. */
  ms: number;
  /** 429 pauses applied. */
  pauses: number;
}

interface ModelState {
  requests: Bucket | null;
  tokens: Bucket | null;
  /** No call of this model starts before this time (a 429's Retry-After). */
  pausedUntil: number;
  waits: ModelWaits;
}

/** Waits until a call of about `tokens` tokens fits both limits of its model, and its model is not paused. */
export class ModelRateLimiter {
  private readonly models = new Map<string, ModelState>();
  /** Calls that had to wait, and for how long in total (ms), over all models. */
  readonly waited = { calls: 0, ms: 0 };

  constructor(
    private readonly defaults: ModelLimits,
    private readonly perModel: Readonly<Record<string, Partial<ModelLimits>>> = {},
    private readonly clock: Clock = systemClock,
  ) {}

  /** The limits that apply to a model: its own, else the defaults. */
  limitsOf(model: string): ModelLimits {
    const own = this.perModel[model] ?? {};
    return {
      requestsPerMinute: own.requestsPerMinute ?? this.defaults.requestsPerMinute,
      tokensPerMinute: own.tokensPerMinute ?? this.defaults.tokensPerMinute,
    };
  }

  private state(model: string): ModelState {
    let s = this.models.get(model);
    if (!s) {
      const l = this.limitsOf(model);
      s = {
        requests: l.requestsPerMinute > 0 ? new Bucket(l.requestsPerMinute, this.clock) : null,
        tokens: l.tokensPerMinute > 0 ? new Bucket(l.tokensPerMinute, this.clock) : null,
        pausedUntil: 0,
        waits: { calls: 0, ms: 0, pauses: 0 },
      };
      this.models.set(model, s);
    }
    return s;
  }

  /** Waits for one request slot and `tokens` tokens of `model`; returns the ms waited. */
  async acquire(model: string, tokens: number): Promise<number> {
    const s = this.state(model);
    let total = 0;
    for (;;) {
      const paused = Math.max(0, s.pausedUntil - this.clock.now());
      const wait = paused > 0 ? paused : (s.requests?.take(1) ?? 0);
      const waitTokens = wait === 0 ? (s.tokens?.take(tokens) ?? 0) : 0;
      if (wait === 0 && waitTokens === 0) {
        if (total > 0) {
          s.waits.calls++;
          this.waited.calls++;
        }
        return total;
      }
      if (paused === 0 && wait === 0) s.requests?.adjust(1); // the request slot goes back while waiting for tokens
      const ms = Math.max(wait, waitTokens);
      total += ms;
      s.waits.ms += ms;
      this.waited.ms += ms;
      await this.clock.sleep(ms);
    }
  }

  /** After a call: charges (or refunds) the difference between the tokens it took and the tokens it used. */
  settle(model: string, estimated: number, used: number): void {
    this.state(model).tokens?.adjust(estimated - used);
  }

  /** A 429 said "retry after `ms`": no call of this model starts before then; other models are not touched. */
  pause(model: string, ms: number): void {
    const s = this.state(model);
    s.pausedUntil = Math.max(s.pausedUntil, this.clock.now() + ms);
    s.waits.pauses++;
  }

  /** Ms until the model may be called again after a 429 (0 = not paused). */
  pausedFor(model: string): number {
    return Math.max(0, (this.models.get(model)?.pausedUntil ?? 0) - this.clock.now());
  }

  /** Waits of one model so far. */
  waitsOf(model: string): ModelWaits {
    return { ...(this.models.get(model)?.waits ?? { calls: 0, ms: 0, pauses: 0 }) };
  }

  /** Tokens a model may use now without waiting (Infinity without a TPM limit). */
  tokensAvailable(model: string): number {
    return this.state(model).tokens?.available() ?? Infinity;
  }
}
