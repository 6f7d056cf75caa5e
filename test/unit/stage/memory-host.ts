/**
 * An in-memory host for the stage runner: no Temporal, no Kafka. It lists a pipeline's splits,
 * runs each source stage's splits and then, as the pipeline workflow does, every downstream stage
 * on the edge batches it was sent, and commits the job, all in this process over a temp data dir.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import type { Pipeline } from "../../../core/api/pipeline.js";
import { addCounts, sentBatches, type JobRuntimeOptions, type StageCounts, type StageInput, type StageOutput } from "../../../core/plan/job.js";
import { commitJob, listSplits, type CommitResult, type ControlInput } from "../../../activities/job-control.js";
import { OperatorRegistry } from "../../../activities/registry.js";
import type { ServiceRegistry } from "../../../activities/services.js";
import { runStage, type StageHost } from "../../../activities/stage/run-stage.js";

/** Runtime options of a test job: small, fast retries come from the operators' own policies. */
const RUNTIME: JobRuntimeOptions = {
  activityTimeoutMs: 60_000,
  heartbeatTimeoutMs: 10_000,
  maxBatchBytes: 512 * 1024,
  splitBytes: 64 * 1024,
  splitPrefetch: 1,
  localActivities: false,
  eventsPerRun: 2000,
  historyBytesPerRun: 2 * 1024 * 1024,
  deadLetterPath: null,
};

/** One stage activity as the host saw it. */
export interface StageCall {
  input: StageInput;
  output: StageOutput;
}

/** What a job run on the memory host did. */
export interface MemoryJob {
  /** Totals over every stage activity. */
  counts: StageCounts;
  /** Every stage activity, in the order they finished. */
  calls: StageCall[];
  commit: CommitResult;
  /** Heartbeats the runner sent. */
  heartbeats: number;
}

/** A stage host over a temp data dir; `close()` removes it. */
export class MemoryHost implements StageHost {
  readonly dataDir = mkdtempSync(join(tmpdir(), "sage-stage-unit-"));
  readonly logger = pino({ level: process.env.SAGE_TEST_LOG ?? "silent" });
  readonly registry: OperatorRegistry;
  heartbeats = 0;

  /** `services`: the registry of the services the pipeline's functions use (none when not given). */
  constructor(
    readonly pipeline: Pipeline,
    services?: (dataDir: string, logger: Logger) => ServiceRegistry,
  ) {
    this.registry = new OperatorRegistry(pipeline, this.logger, services?.(this.dataDir, this.logger));
  }

  heartbeat(): void {
    this.heartbeats++;
  }

  cancelled(): boolean {
    return false;
  }

  /** A path inside the data dir (for sink outputs). */
  path(name: string): string {
    return join(this.dataDir, name);
  }

  /** Runs the job with `params` to its commit (`runtime`: options over the test defaults, e.g. a redrive). */
  async run(
    jobId: string,
    params: Record<string, string>,
    options: { parallelism?: number; fusion?: boolean; runtime?: Partial<JobRuntimeOptions> } = {},
  ): Promise<MemoryJob> {
    const compiled = this.registry.compile(options.parallelism ?? 1, options.fusion ?? true);
    const { plan } = compiled;
    const control: ControlInput = {
      jobId,
      pipeline: plan.pipeline,
      planHash: plan.hash,
      parallelism: plan.parallelism,
      fusion: plan.fusion,
      params,
      runtime: { ...RUNTIME, ...options.runtime },
    };
    const job: MemoryJob = { counts: {}, calls: [], commit: { outputs: {}, deadLetterPath: null }, heartbeats: 0 };
    const run = async (stage: string, unit: Partial<StageInput> & { shard: string }): Promise<void> => {
      const input: StageInput = { ...control, stage, ...unit };
      const output = await runStage(input, this, this.logger);
      job.calls.push({ input, output });
      addCounts(job.counts, output.counts);
      for (const [key, records] of sentBatches(output)) {
        const edge = plan.edges.find((e) => e.fromStage === stage && e.id === key)!;
        const rounds = edge.feedback ? { ...unit.rounds, [edge.toOperator]: (unit.rounds?.[edge.toOperator] ?? 0) + 1 } : unit.rounds;
        await run(edge.toStage, { shard: `${unit.shard}.${key}`, ...records, edge: key, ...(rounds ? { rounds } : {}) });
      }
    };
    const splits = await listSplits(control, this.registry, this.logger);
    for (const refs of Object.values(splits)) {
      for (const ref of refs) await run(ref.stage, { shard: `${ref.stage}-${String(ref.index).padStart(6, "0")}`, split: ref });
    }
    const deadLetters = Object.values(job.counts).reduce((n, c) => n + c.dead, 0);
    job.commit = await commitJob({ ...control, deadLetters }, this.registry, this.dataDir);
    job.heartbeats = this.heartbeats;
    return job;
  }

  async close(): Promise<void> {
    await this.registry.close();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** The JSON Lines of a file, parsed. */
export function readJsonl<T = unknown>(path: string): T[] {
  const text = readFileSync(path, "utf8");
  return text.length === 0
    ? []
    : text
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as T);
}

/** A dead letter as the runner writes it. */
export interface DeadLetter {
  operator: string;
  attempts: number;
  error: { name: string; message: string; code?: string; stack?: string };
  record: unknown;
}
