/** A clock for tests that moves only when the test advances it: sleeps resolve when their time comes. */
import type { Clock } from "../../connectors/llm/rate-limiter.js";

/** A manual clock and what slept on it. */
export class ManualClock implements Clock {
  private t = 0;
  private readonly sleepers: Array<{ at: number; wake: () => void }> = [];
  /** Every sleep asked for, in ms, in order. */
  readonly sleeps: number[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    return new Promise((wake) => this.sleepers.push({ at: this.t + ms, wake }));
  }

  /** Sleeps not yet over. */
  pending(): number {
    return this.sleepers.length;
  }

  /** Moves time on by `ms` and wakes the sleeps that are over, then lets their continuations run. */
  async advance(ms: number): Promise<void> {
    this.t += ms;
    for (let i = this.sleepers.length - 1; i >= 0; i--) {
      const s = this.sleepers[i]!;
      if (s.at <= this.t) {
        this.sleepers.splice(i, 1);
        s.wake();
      }
    }
    await new Promise((r) => setImmediate(r));
  }

  /** Resolves once some code sleeps on this clock (polls the event loop, no time threshold). */
  async untilSleeping(count = 1): Promise<void> {
    while (this.sleepers.length < count) await new Promise((r) => setImmediate(r));
  }
}
