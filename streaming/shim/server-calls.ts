/**
 * The shim's calls to the Temporal server: each bounded by a deadline, and the connection renewed
 * once they have failed without a break for a while. A call without a deadline can wait for good:
 * after a kill -9 and restart of the server, a grpc-js channel can stay connecting forever with every
 * call queued behind it (grpc-node issue 2785), and the shim then stalls with the broker and the
 * server both healthy.
 */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from "@temporalio/client";
import type { Logger } from "pino";
import type { SageClient } from "../../client/sage-client.js";

/** How long calls fail without a success in between before the connection is renewed, and the least time between renewals. */
export const RENEW_AFTER_MS = 20_000;

/** True for an error that is the server's answer (the call went through), not a failure to reach it. */
function isAnswer(err: unknown): boolean {
  return err instanceof WorkflowNotFoundError || err instanceof WorkflowExecutionAlreadyStartedError;
}

/** Runs the shim's server calls with deadlines and renews the connection when they keep failing. */
export class ServerCalls {
  /** When the current run of failures began (null after a success). */
  private failingSince: number | null = null;
  private renewedAt = 0;
  /** Connections renewed so far. */
  renewals = 0;

  constructor(
    private readonly client: SageClient,
    private readonly logger: Logger,
    private readonly renewAfterMs = RENEW_AFTER_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Runs `call` on the current client, failing with DEADLINE_EXCEEDED after `deadlineMs`. */
  async run<T>(deadlineMs: number, call: (temporal: Client) => Promise<T>): Promise<T> {
    const temporal = this.client.temporal;
    try {
      const out = await temporal.withDeadline(this.now() + deadlineMs, () => call(temporal));
      this.failingSince = null;
      return out;
    } catch (err) {
      if (isAnswer(err)) this.failingSince = null;
      else this.failed(err);
      throw err;
    }
  }

  /** Counts a failure; renews the connection once failures have lasted `renewAfterMs`. */
  private failed(err: unknown): void {
    const now = this.now();
    this.failingSince ??= now;
    if (now - this.failingSince < this.renewAfterMs || now - this.renewedAt < this.renewAfterMs) return;
    this.renewedAt = now;
    this.logger.warn(
      { err: (err as Error).message, failingMs: now - this.failingSince },
      "calls to the Temporal server have failed without a break; opening a fresh connection",
    );
    this.client.renewConnection().then(
      () => {
        this.renewals++;
        this.logger.info({ renewals: this.renewals }, "fresh connection to the Temporal server");
      },
      (e: unknown) => this.logger.warn({ err: (e as Error).message }, "connection renewal failed; the next failures try again"),
    );
  }
}
