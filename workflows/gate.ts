/**
 * A deterministic counting semaphore for workflow code: at most `limit` tasks at once, first come
 * first served. A released slot is handed to the next waiter directly, so waking costs O(1) per
 * task (a `condition()` per waiter would be re-evaluated on every activation).
 */

/** Limits concurrent activity calls of one stage to its parallelism. */
export class Gate {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Runs `task` when a slot is free, in arrival order. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((wake) => this.waiters.push(wake));
    try {
      return await task();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    }
  }
}
