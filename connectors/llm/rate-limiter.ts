/** Requests-per-minute and tokens-per-minute limits of one model, shared by a worker's operators. */

/** A token bucket that refills continuously. */
class Bucket {
  private level: number;
  private last = Date.now();
  constructor(private readonly perMinute: number) {
    this.level = perMinute;
  }
  /** Ms until `amount` is available (0 = now); takes it when available. */
  take(amount: number): number {
    const now = Date.now();
    this.level = Math.min(this.perMinute, this.level + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    const want = Math.min(amount, this.perMinute);
    if (this.level >= want) {
      this.level -= want;
      return 0;
    }
    return Math.ceil(((want - this.level) * 60_000) / this.perMinute);
  }
  /** Puts back what `take` took. */
  refund(amount: number): void {
    this.level = Math.min(this.perMinute, this.level + amount);
  }
}

/** Waits until a call of about `tokens` tokens fits both limits of its model (0 = unlimited). */
export class ModelRateLimiter {
  private readonly buckets = new Map<string, { requests: Bucket | null; tokens: Bucket | null }>();
  /** Calls that had to wait, and for how long in total (ms). */
  readonly waited = { calls: 0, ms: 0 };
  constructor(
    private readonly requestsPerMinute: number,
    private readonly tokensPerMinute: number,
  ) {}

  async acquire(model: string, tokens: number): Promise<void> {
    let b = this.buckets.get(model);
    if (!b) {
      b = {
        requests: this.requestsPerMinute > 0 ? new Bucket(this.requestsPerMinute) : null,
        tokens: this.tokensPerMinute > 0 ? new Bucket(this.tokensPerMinute) : null,
      };
      this.buckets.set(model, b);
    }
    let counted = false;
    for (;;) {
      const wait = b.requests?.take(1) ?? 0;
      const waitTokens = wait === 0 ? (b.tokens?.take(tokens) ?? 0) : 0;
      if (wait === 0 && waitTokens === 0) return;
      if (wait === 0) b.requests?.refund(1); // the request slot goes back while waiting for tokens
      const ms = Math.max(wait, waitTokens);
      if (!counted) this.waited.calls++;
      counted = true;
      this.waited.ms += ms;
      await new Promise((r) => setTimeout(r, ms));
    }
  }
}
