/**
 * Progress watching: every second the shim queries each partition workflow's progress, to keep its
 * sender's pending estimate fresh, to start checkpoint holds, and to notice a stopped workflow (a
 * `sage stop`), which stops the job.
 */
import { WorkflowNotFoundError } from "@temporalio/client";
import type { Logger } from "pino";
import type { StreamProgress } from "../../core/plan/stream.js";
import { streamProgressQuery } from "../../workflows/contract.js";
import { shimMetrics } from "../../monitoring/shim-metrics.js";
import { taskQueuePollers } from "../../client/task-queue.js";
import type { StreamJob } from "../stream-job.js";
import type { ShimStats } from "./options.js";
import type { ServerCalls } from "./server-calls.js";
import type { WorkflowSender } from "./sender.js";

/** How often the workflows are watched. */
const WATCH_EVERY_MS = 1_000;
/**
 * Longest wait for a progress query: the server holds one while a workflow task runs, so a round can
 * take a long local-activity task; past this the round ends and the next asks again.
 */
const QUERY_DEADLINE_MS = 20_000;
/** Longest wait for a workflow's description. */
const DESCRIBE_DEADLINE_MS = 10_000;
/** How long progress queries fail without a break before the shim asks whether any worker polls the job's task queue, and how often it asks again. */
const NO_WORKER_CHECK_MS = 15_000;

/** What the watch needs from its shim. */
export interface WatchHost {
  readonly job: StreamJob;
  readonly senders: readonly WorkflowSender[];
  readonly stats: ShimStats;
  readonly logger: Logger;
  /** The shim's calls to the server (deadlines, connection renewal). */
  readonly calls: ServerCalls;
  /** The job's task queue, where its workers poll. */
  readonly taskQueue: string;
  /** True once the shim stops. */
  stopping(): boolean;
  /** A partition workflow stops or has ended: the job is stopping. */
  workflowEnded(): void;
  /** After each round of queries (the shim follows a savepoint's barrier). */
  watched(): Promise<void>;
}

/** Queries the partition workflows of a job, each at most one query at a time. */
export class ProgressWatch {
  private timer: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;
  /** The progress query under way per workflow (see `refresh`). */
  private readonly querying = new Map<WorkflowSender, Promise<void>>();
  /** Since when progress queries have failed without an answer in between (null: the last one was answered). */
  private failingSince: number | null = null;
  /** When the task queue's pollers were last counted during this run of failures. */
  private checkedAt = 0;
  /** True once the shim warned that no worker polls the task queue (until a query is answered again). */
  private warnedNoWorker = false;

  constructor(private readonly host: WatchHost) {}

  /** Watches every `WATCH_EVERY_MS`, one round at a time. */
  start(): void {
    this.timer = setInterval(() => {
      this.watching ??= this.watch().finally(() => (this.watching = null));
    }, WATCH_EVERY_MS);
  }

  /** Stops watching; returns once the last round is over, so no call outlives the client. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.watching?.catch(() => undefined);
  }

  /**
   * Queries one workflow's pending batches and phase; a caller that comes while a query is under way
   * waits for that one. The server buffers one query per workflow while a workflow task runs (its
   * default `history.MaxBufferedQueryCount` is 1), and with local activities one nearly always
   * runs: a second query at once is refused (RESOURCE_EXHAUSTED) and the client retries it with
   * backoff, long enough for the pending estimate to go stale and stall every partition of the shim.
   */
  refresh(sender: WorkflowSender): Promise<void> {
    let running = this.querying.get(sender);
    if (!running) {
      running = this.query(sender).finally(() => this.querying.delete(sender));
      this.querying.set(sender, running);
    }
    return running;
  }

  private async query(sender: WorkflowSender): Promise<void> {
    const { job, stats, logger } = this.host;
    const sentBefore = sender.sent;
    const asked = Date.now();
    let p: StreamProgress;
    try {
      const workflowId = job.workflowIds[sender.index]!;
      p = await this.host.calls.run(QUERY_DEADLINE_MS, (temporal) => temporal.workflow.getHandle(workflowId).query(streamProgressQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return;
      logger.debug({ err: (err as Error).message, workflow: sender.index, ms: Date.now() - asked }, "progress query failed");
      await this.checkWorkers(asked);
      return;
    }
    this.answered();
    const ms = Date.now() - asked;
    if (ms > 500) logger.debug({ workflow: sender.index, ms, runId: p.runId }, "slow progress query");
    sender.progress = p;
    sender.resumeFetch();
    sender.pending = p.pending + (sender.sent - sentBefore);
    sender.hold.onProgress(p);
    shimMetrics.progress({ pipeline: job.pipeline.name, jobId: job.jobId }, sender.workflowId, p);
    stats.maxPendingSeen = Math.max(stats.maxPendingSeen, p.pending);
    if (p.phase !== "running" && !sender.closing) {
      sender.closing = true;
      logger.info({ workflowId: sender.workflowId, phase: p.phase }, "partition workflow is stopping");
      this.host.workflowEnded();
    }
  }

  /**
   * After progress queries have failed for a while: a task queue that no worker polls is why (a
   * query is answered by a worker, and the job's units run on one). Says so once, plainly: the
   * shim's connection renewals alone would point at the server.
   */
  private async checkWorkers(asked: number): Promise<void> {
    const { logger, taskQueue, job } = this.host;
    const now = Date.now();
    this.failingSince ??= asked;
    if (this.warnedNoWorker || now - this.failingSince < NO_WORKER_CHECK_MS || now - this.checkedAt < NO_WORKER_CHECK_MS) return;
    this.checkedAt = now;
    // Past `calls`: an answer here must not end the run of failures that renews the connection
    // (queries that only a worker can answer fail the same way on a stuck channel).
    const temporal = job.client.temporal;
    const pollers = await temporal
      .withDeadline(now + DESCRIBE_DEADLINE_MS, () => taskQueuePollers(temporal, job.client.config.temporal.namespace, taskQueue))
      .catch(() => null);
    if (pollers !== 0 || this.warnedNoWorker) return;
    this.warnedNoWorker = true;
    logger.warn(
      { taskQueue, failingMs: now - this.failingSince },
      `no worker polls task queue ${taskQueue}: the job's workflows cannot run or answer until one does; start \`sage worker <module>\` for pipeline ${job.pipeline.name}`,
    );
  }

  /** A progress query was answered: the run of failures is over. */
  private answered(): void {
    this.failingSince = null;
    this.checkedAt = 0;
    if (!this.warnedNoWorker) return;
    this.warnedNoWorker = false;
    this.host.logger.info({ taskQueue: this.host.taskQueue }, "a worker answers the job's progress queries again");
  }

  /** One round: every workflow at once, so a slow answer from one does not leave the others' estimates stale. */
  private async watch(): Promise<void> {
    await Promise.all(this.host.senders.map((sender) => this.watchOne(sender)));
    if (!this.host.stopping())
      await this.host.watched().catch((err: unknown) => this.host.logger.warn({ err: (err as Error).message }, "savepoint barrier step failed"));
  }

  private async watchOne(sender: WorkflowSender): Promise<void> {
    if (this.host.stopping()) return;
    if (!sender.started && !sender.closing) {
      // A workflow started by another shim (or stopped before this one fed it) is seen here too.
      const workflowId = this.host.job.workflowIds[sender.index]!;
      const status = await this.host.calls
        .run(DESCRIBE_DEADLINE_MS, (temporal) => temporal.workflow.getHandle(workflowId).describe())
        .then((d) => d.status.name)
        .catch(() => null);
      if (status === null) return;
      sender.started = true;
      if (status !== "RUNNING") {
        sender.closing = true;
        this.host.workflowEnded();
        return;
      }
    }
    if (sender.started && !sender.closing) await this.refresh(sender);
  }
}
