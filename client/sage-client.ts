/**
 * The client API: connect to a Temporal server, submit a pipeline as a job, follow it, cancel it.
 *
 * ```ts
 * const client = await SageClient.connect();
 * const job = await client.submit(pipeline, { params: { input: "in.txt", output: "out.jsonl" } });
 * console.log(await job.result());
 * ```
 */
import { ActivityFailure, Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from "@temporalio/client";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { JobExistsError, UsageError } from "../core/errors.js";
import { PIPELINE_WORKFLOW, parseWorkflowId, workflowIdOf, type JobInput, type JobProgress, type JobResult, type JobRuntimeOptions } from "../core/plan/job.js";
import { progressQuery } from "../workflows/contract.js";
import { isStreaming } from "../core/plan/stream.js";
import { checkParameters } from "../core/plan/parameters.js";
import type { PhysicalPlan } from "../core/plan/physical.js";
import { loadConfig } from "./config-loader.js";
import { connectionOptions } from "./connection.js";
import { connectError } from "./connect-error.js";
import { SEARCH_ATTRIBUTES, ensureSearchAttributes } from "./search-attributes.js";
import { taskQueueOf } from "./task-queue.js";
import { dataConverterOf } from "../security/data-converter.js";

/** How long a connection replaced by `renewConnection` stays open: past the deadline of any call still on it. */
const RETIRED_CONNECTION_MS = 60_000;

/** Options of `SageClient.connect`. */
export interface ConnectOptions {
  /** Server address `host:port` (default from configuration: 127.0.0.1:7233). */
  address?: string;
  namespace?: string;
  /** Full configuration (default: loaded from sage.config.yaml and SAGE_* variables). */
  config?: SageConfig;
}

/** Options of `SageClient.submit`. */
export interface SubmitOptions {
  /** Job id (default: a timestamp); the workflow id is `sage/<pipeline>/<jobId>`. An id already used is refused (`JobExistsError`). */
  jobId?: string;
  /** Job parameters read by `env.param(name)`. */
  params?: Record<string, string>;
  /** Override the job parallelism (default: configuration). */
  parallelism?: number;
  /** Resume from splits an earlier run completed (used by `sage rerun`). */
  resume?: JobInput["resume"];
}

/** A new job id: UTC timestamp plus a random suffix. */
export function newJobId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${t}-${Math.random().toString(36).slice(2, 6)}`;
}

/** The errors of a failure chain, outermost first. */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let cur = err; cur instanceof Error && chain.length < 10; cur = (cur as { cause?: unknown }).cause) chain.push(cur);
  return chain;
}

/**
 * A failure's root cause, said once: where it happened (the activity, whose error names the operator
 * and carries the hint) and its message. The chain around it (workflow failed, activity task failed,
 * the error's own cause) repeats the same words, so it is left out.
 */
export function failureMessage(err: unknown): string {
  if (err instanceof JobFailedError) return err.message; // said once already, when it was made
  const chain = causes(err);
  const activity = chain.find((e): e is ActivityFailure => e instanceof ActivityFailure);
  if (activity?.cause) return `${activity.activityType ?? "an activity"} failed: ${activity.cause.message}`;
  // No activity failed (a workflow error, a termination, a timeout): each message once, wrappers left out.
  const said: string[] = [];
  for (const e of chain) {
    if (e instanceof JobFailedError || (e instanceof WorkflowFailedError && e.cause)) continue;
    if (e.message && !said.some((m) => m.includes(e.message))) said.push(e.message);
  }
  return said.join(": ") || String(err);
}

/** A submitted job. */
export class SageJob {
  /** @internal */
  constructor(
    readonly handle: WorkflowHandle,
    readonly pipeline: string,
    readonly jobId: string,
    readonly plan: PhysicalPlan | null,
    /** Run id of the run this handle started (undefined for looked-up jobs: latest run). */
    readonly runId?: string,
  ) {}

  /** Temporal workflow id (`sage/<pipeline>/<jobId>`). */
  get workflowId(): string {
    return this.handle.workflowId;
  }

  /** Waits for the job to finish; throws `JobFailedError` with the cause when it fails. */
  async result(): Promise<JobResult> {
    try {
      return (await this.handle.result()) as JobResult;
    } catch (err) {
      if (err instanceof WorkflowFailedError) throw new JobFailedError(this.workflowId, failureMessage(err.cause ?? err), err);
      throw err;
    }
  }

  /** Live progress (splits, counts per operator, dead letters), via the workflow's query. */
  async progress(): Promise<JobProgress> {
    return this.handle.query(progressQuery);
  }

  /** Temporal's description of the run (status, times, memo with the plan). */
  async describe() {
    return this.handle.describe();
  }

  /** Requests cancellation; staged output is removed and nothing is published. */
  async cancel(): Promise<void> {
    await this.handle.cancel();
  }
}

/** A job this client started: the id of the run it started is known. */
export type StartedJob = SageJob & { readonly runId: string };

/** A job that ended in failure; `message` holds its root cause. */
export class JobFailedError extends Error {
  readonly code = "JOB_FAILED";
  constructor(
    readonly workflowId: string,
    message: string,
    options?: unknown,
  ) {
    super(`job ${workflowId} failed: ${message}`, { cause: options });
    this.name = "JobFailedError";
  }
}

/** Submits and controls Sage jobs on a Temporal server. */
export class SageClient {
  /** The connection and client in use: `renewConnection` replaces both. */
  private current: { connection: Connection; temporal: Client };
  /** The renewal under way, which concurrent callers share. */
  private renewal: Promise<void> | null = null;
  /** Connections a renewal replaced, until they close (see `renewConnection`). */
  private readonly retired = new Set<Connection>();

  private constructor(
    connection: Connection,
    temporal: Client,
    readonly config: SageConfig,
    readonly searchAttributes: boolean,
  ) {
    this.current = { connection, temporal };
  }

  /** The gRPC connection to the server. */
  get connection(): Connection {
    return this.current.connection;
  }

  /** The Temporal client on that connection. */
  get temporal(): Client {
    return this.current.temporal;
  }

  /** Connects; a clear error names the address when no server answers. */
  static async connect(options: ConnectOptions = {}): Promise<SageClient> {
    const base = options.config ?? loadConfig();
    const config: SageConfig = {
      ...base,
      temporal: { ...base.temporal, ...(options.address ? { address: options.address } : {}), ...(options.namespace ? { namespace: options.namespace } : {}) },
    };
    const { connection, temporal } = await SageClient.open(config);
    const sa = await ensureSearchAttributes(connection, config.temporal.namespace).catch(() => false);
    return new SageClient(connection, temporal, config, sa);
  }

  /** A new connection to the configured server, checked by a first call, and a client on it. */
  private static async open(config: SageConfig): Promise<{ connection: Connection; temporal: Client }> {
    const dataConverter = dataConverterOf(config); // keys checked before anything connects
    const settings = connectionOptions(config); // a TLS file that cannot be read is a config error, not a server down
    let connection: Connection;
    try {
      connection = await Connection.connect({
        ...settings,
        connectTimeout: 5_000,
        // The SDK's own 128 MB default is set under a key grpc-js ignores, leaving 4 MB: too small for a history page of an unfused job.
        channelArgs: {
          "grpc.max_receive_message_length": 128 * 1024 * 1024,
          // Subchannels of its own: grpc-js otherwise shares them between connections to one address,
          // and a renewed connection would take over the old one's subchannel, stuck connecting.
          "grpc.use_local_subchannel_pool": 1,
        },
      });
      await connection.workflowService.getSystemInfo({});
    } catch (err) {
      throw await connectError(settings, err);
    }
    return { connection, temporal: new Client({ connection, namespace: config.temporal.namespace, dataConverter }) };
  }

  /**
   * Replaces the connection with a fresh one; calls made after it resolves use the new one. For a
   * long-lived process (the shim) whose calls keep failing after the server was restarted: a
   * grpc-js channel whose reconnect hit the server mid-start can stay connecting for good, every
   * call queued behind it (grpc-node issue 2785). Concurrent callers share one renewal; it fails
   * (keeping the old connection) while no server answers. The old connection closes
   * `RETIRED_CONNECTION_MS` later (or with the client): a call still on it may be waiting to retry,
   * and the Temporal client's retry timer throws, where nothing catches it, on a closed channel
   * (a shim died of "Channel has been shut down" 20 s after a renewal). Callers that renew give
   * every call a deadline shorter than that.
   */
  renewConnection(): Promise<void> {
    this.renewal ??= SageClient.open(this.config)
      .then((fresh) => {
        const old = this.current.connection;
        this.current = fresh;
        this.retired.add(old);
        setTimeout(() => {
          if (this.retired.delete(old)) void old.close().catch(() => undefined);
        }, RETIRED_CONNECTION_MS).unref();
      })
      .finally(() => (this.renewal = null));
    return this.renewal;
  }

  /** Activity timeouts and budgets of jobs this client starts, from its configuration. */
  runtimeOptions(): JobRuntimeOptions {
    const exec = this.config.execution;
    return {
      activityTimeoutMs: this.config.temporal["activity-timeout"],
      heartbeatTimeoutMs: this.config.temporal["heartbeat-timeout"],
      maxBatchBytes: exec["max-batch-bytes"],
      splitBytes: exec["split-bytes"],
      splitPrefetch: exec["split-prefetch"],
      localActivities: this.config.kafka["local-activities"],
      eventsPerRun: this.config.kafka["events-per-run"],
      historyBytesPerRun: this.config.kafka["history-bytes-per-run"],
      checkpointIntervalMs: this.config.state["checkpoint-interval"],
      deadLetterPath: this.config["dead-letter"].path ?? null,
      lineage: exec.lineage,
    };
  }

  /** Memo and search attributes that make a job's workflows findable and readable in the Web UI. */
  startDecorations(pipeline: string, jobId: string, plan: PhysicalPlan, params: Record<string, string>, summary: string) {
    return {
      memo: { plan, planHash: plan.hash, params },
      staticSummary: summary,
      ...(this.searchAttributes
        ? {
            typedSearchAttributes: [
              { key: SEARCH_ATTRIBUTES.pipeline, value: pipeline },
              { key: SEARCH_ATTRIBUTES.jobId, value: jobId },
            ],
          }
        : {}),
    };
  }

  /**
   * Compiles `pipeline`, checks that every job parameter it needs is given, starts it as a job and
   * returns its handle. A job id is run once: a second submit under the same id throws
   * `JobExistsError` describing the earlier run (`sage rerun` runs a failed job again).
   */
  async submit(pipeline: Pipeline, options: SubmitOptions = {}): Promise<StartedJob> {
    const exec = this.config.execution;
    const compiled = pipeline.compile({ parallelism: options.parallelism ?? exec.parallelism, fusion: exec.fusion });
    if (isStreaming(compiled.plan)) {
      throw new UsageError(
        `pipeline "${pipeline.name}" reads Kafka: it runs as a streaming job, started by the shim (\`sage run\` or \`sage shim\`), not by submit()`,
      );
    }
    const params = options.params ?? {};
    checkParameters(compiled.plan, params);
    const jobId = options.jobId ?? newJobId();
    const input: JobInput = { jobId, plan: compiled.plan, params, runtime: this.runtimeOptions(), ...(options.resume ? { resume: options.resume } : {}) };
    const workflowId = workflowIdOf(pipeline.name, jobId);
    try {
      const handle = await this.temporal.workflow.start(PIPELINE_WORKFLOW, {
        workflowId,
        taskQueue: taskQueueOf(pipeline.name, this.config),
        args: [input],
        // Closed runs too: a second start would otherwise run the job id again.
        workflowIdReusePolicy: "REJECT_DUPLICATE",
        ...this.startDecorations(
          pipeline.name,
          jobId,
          compiled.plan,
          params,
          `sage pipeline ${pipeline.name}, job ${jobId}, plan ${compiled.plan.hash.slice(0, 12)}`,
        ),
      });
      return new SageJob(handle, pipeline.name, jobId, compiled.plan, handle.firstExecutionRunId) as StartedJob;
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw await this.jobExists(workflowId, params);
      throw err;
    }
  }

  /** The error for a submit under a job id that already names a job: the earlier run, its status and parameters, what to do. */
  private async jobExists(workflowId: string, params: Record<string, string>): Promise<JobExistsError> {
    const earlier = await this.temporal.workflow.getHandle(workflowId).describe();
    const status = earlier.status.name;
    const before = (earlier.memo?.params ?? {}) as Record<string, string>;
    const show = (p: Record<string, string>, keys: string[]) => keys.map((k) => `${k}=${p[k] ?? "(not given)"}`).join(" ") || "none";
    const changed = [...new Set([...Object.keys(before), ...Object.keys(params)])].filter((k) => before[k] !== params[k]).sort();
    const next = ["FAILED", "TERMINATED", "TIMED_OUT"].includes(status)
      ? `run it again, reusing its completed splits, with \`sage rerun ${workflowId}\`; or pick a new job id (--job-id)`
      : `see it with \`sage status ${workflowId}\`; or pick a new job id (--job-id)`;
    const lines = [
      `job ${workflowId} already exists; a job id is run once, so this request was not started`,
      `  earlier run:   ${earlier.runId}, ${status}, started ${earlier.startTime.toISOString()}`,
      `  its params:    ${show(before, Object.keys(before).sort())}`,
      `  this request:  ${changed.length === 0 ? "the same parameters" : `differs in ${show(params, changed)}`}`,
      `  next:          ${next}`,
    ];
    return new JobExistsError(workflowId, earlier.runId, status, before, lines.join("\n"));
  }

  /** A handle on an existing job by workflow id, or by job id (looked up by search attribute). */
  async job(idOrWorkflowId: string): Promise<SageJob> {
    let workflowId = idOrWorkflowId;
    if (!workflowId.startsWith("sage/")) {
      const found: string[] = [];
      for await (const w of this.temporal.workflow.list({ query: `${SEARCH_ATTRIBUTES.jobId.name} = "${idOrWorkflowId.replace(/"/g, "")}"` })) {
        if (!found.includes(w.workflowId)) found.push(w.workflowId);
      }
      if (found.length === 0)
        throw new UsageError(`no job with id "${idOrWorkflowId}" (give the workflow id sage/<pipeline>/<jobId>, or check \`sage status\`)`);
      if (found.length > 1) throw new UsageError(`job id "${idOrWorkflowId}" is ambiguous: ${found.join(", ")}; give the workflow id`);
      workflowId = found[0]!;
    }
    const { pipeline = "", jobId = "" } = parseWorkflowId(workflowId) ?? {};
    return new SageJob(this.temporal.workflow.getHandle(workflowId), pipeline, jobId, null);
  }

  /** Lists jobs (newest first), optionally of one pipeline. */
  async list(options: { pipeline?: string; limit?: number } = {}) {
    const query = options.pipeline ? `${SEARCH_ATTRIBUTES.pipeline.name} = "${options.pipeline}"` : `WorkflowType = "${PIPELINE_WORKFLOW}"`;
    const out: Array<{ workflowId: string; runId: string; status: string; startTime: Date; closeTime: Date | undefined }> = [];
    for await (const w of this.temporal.workflow.list({ query })) {
      out.push({ workflowId: w.workflowId, runId: w.runId, status: w.status.name, startTime: w.startTime, closeTime: w.closeTime });
      if (out.length >= (options.limit ?? 50)) break;
    }
    return out;
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    const retired = [...this.retired];
    this.retired.clear();
    await Promise.allSettled(retired.map((c) => c.close()));
    await this.connection.close();
  }
}
