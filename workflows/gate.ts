/** A deterministic counting semaphore for workflow code: at most `limit` tasks at once, FIFO. */
import { condition } from "@temporalio/workflow";

/** Limits concurrent activity calls of one stage to its parallelism. */
export class Gate {
  private active = 0;
  private nextTicket = 0;
  private serving = 0;

  constructor(private readonly limit: number) {}

  /** Runs `task` when a slot is free, in arrival order. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    const ticket = this.nextTicket++;
    await condition(() => this.serving === ticket && this.active < this.limit);
    this.serving++;
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
    }
  }
}
