/**
 * Moves work through the stage graph of a plan: runs a stage activity on one unit (a split, a
 * stream batch or a batch of records on an edge), then the downstream stages on what it emitted.
 * Shared by the bounded and the streaming workflow; deterministic, and it never runs user code.
 */
import { ApplicationFailure } from "@temporalio/workflow";
import {
  addCounts,
  deadLetterTotal,
  sentBatches,
  type JobContext,
  type KeyedEdgeOutput,
  type LlmBudgetPause,
  type StageCounts,
  type StageInput,
  type StageOutput,
} from "../core/plan/job.js";
import { edgeKey, type PhysicalPlan, type Stage, type StageEdge } from "../core/plan/physical.js";
import { stageActivity, type StageActivityOptions } from "./activity-stubs.js";
import type { StageActivity } from "./contract.js";
import { BudgetPauses } from "./budget-pause.js";
import { Gate } from "./gate.js";
import type { KeyGroupOwners } from "./key-group-owners.js";

/** Calls an activity stub; the workflow counts and tracks its calls there. */
export type ActivityCaller = <A extends unknown[], R>(activity: (...args: A) => Promise<R>, ...args: A) => Promise<R>;

/** The per-unit part of a stage activity's input. */
export type StageUnit = Pick<StageInput, "shard" | "split" | "batch" | "batchRef" | "edge" | "rounds" | "stream" | "keyed">;

/** What the graph runner updates as stages finish. */
export interface StageTotals {
  counts: StageCounts;
  deadLetters: number;
  /** Set while units wait for the LLM budget. */
  llmBudgetPause?: LlmBudgetPause;
}

/** What a stage graph runs, and how. */
export interface StageGraphOptions {
  plan: PhysicalPlan;
  /** The job part of every stage activity's input. */
  context: JobContext;
  /** Counts and dead letters, updated as stages finish. */
  totals: StageTotals;
  call: ActivityCaller;
  /** How the stages run: as activities, or as local activities (streaming batches). */
  stages: StageActivityOptions;
  /** Units a source stage keeps queued per parallel slot beyond the running one (bounded splits; 0 keeps `parallelism` in flight). */
  sourcePrefetch?: number;
  /** Bounded jobs: takes what a unit wrote on a keyed edge (the keyed stage runs once all of its input is in). */
  onKeyed?: (edge: StageEdge, shard: string, output: KeyedEdgeOutput) => void;
  /** Sees every stage activity's output (streaming: event time and state restores). */
  onOutput?: (stage: Stage, output: StageOutput) => void;
  /** Streaming stages run as activities: keyed stages' units go to the worker that holds their state. */
  owners?: KeyGroupOwners;
  /** A unit that meets a spent LLM budget window waits on a workflow timer (bounded jobs; else Temporal's activity retry waits). */
  budgetPauses?: boolean;
}

/** Runs stage activities along the edges of a plan. */
export class StageGraph {
  private readonly activity = new Map<string, StageActivity>();
  private readonly gates = new Map<string, Gate>();
  readonly stageById: Map<string, Stage>;
  private readonly edgeByKey: Map<string, StageEdge>;
  private readonly context: JobContext;
  private readonly totals: StageTotals;
  private readonly call: ActivityCaller;
  private readonly onKeyed: StageGraphOptions["onKeyed"];
  private readonly onOutput: StageGraphOptions["onOutput"];
  private readonly owners: KeyGroupOwners | undefined;
  private readonly pauses: BudgetPauses | null;

  constructor(options: StageGraphOptions) {
    const { plan, sourcePrefetch = 0 } = options;
    this.context = options.context;
    this.totals = options.totals;
    this.call = options.call;
    this.onKeyed = options.onKeyed;
    this.onOutput = options.onOutput;
    this.owners = options.owners;
    this.pauses = options.budgetPauses ? BudgetPauses.of(this.totals) : null;
    const stages = this.pauses ? BudgetPauses.options(options.stages) : options.stages;
    for (const stage of plan.stages) {
      this.activity.set(stage.id, stageActivity(stage, stages));
      this.gates.set(stage.id, new Gate(stage.source ? stage.parallelism * (1 + sourcePrefetch) : stage.parallelism));
    }
    this.stageById = new Map(plan.stages.map((s) => [s.id, s] as const));
    this.edgeByKey = new Map(plan.edges.map((e) => [`${e.fromStage}>${edgeKey(e)}`, e] as const));
  }

  /** The stage `id` of the plan; a failure that fails the job when the plan has none (a worker of another plan answered). */
  stage(id: string): Stage {
    const stage = this.stageById.get(id);
    if (!stage) throw ApplicationFailure.nonRetryable(`the plan has no stage "${id}"`, "PLAN_MISMATCH");
    return stage;
  }

  /**
   * Runs `stage` on `unit`, then its downstream stages on what it emitted. `mayStart` is asked once
   * a slot of the stage is free; false skips the unit (the result is then false). `records` are
   * binary arguments after the input (stream batches), passed only to this first stage.
   */
  async run(stage: Stage, unit: StageUnit, mayStart: () => boolean = () => true, records: Uint8Array[] = []): Promise<boolean> {
    const out = await this.gates.get(stage.id)!.run(async () => {
      if (!mayStart()) return null;
      const input: StageInput = { ...this.context, stage: stage.id, ...unit };
      const shared = this.activity.get(stage.id)!;
      const unitRun = () =>
        this.owners ? this.owners.run(stage, shared, (activity) => this.call(activity, input, ...records)) : this.call(shared, input, ...records);
      return this.pauses ? this.pauses.run(unitRun) : unitRun();
    });
    if (!out) return false;
    this.onOutput?.(stage, out);
    addCounts(this.totals.counts, out.counts);
    this.totals.deadLetters = deadLetterTotal(this.totals.counts);
    for (const [key, keyed] of Object.entries(out.keyed ?? {})) {
      const edge = this.edgeByKey.get(`${stage.id}>${key}`);
      if (!edge?.keyed || !this.onKeyed) throw ApplicationFailure.nonRetryable(`stage ${stage.id} emitted on unknown keyed edge "${key}"`, "PLAN_MISMATCH");
      this.onKeyed(edge, unit.shard, keyed);
    }
    await Promise.all(
      sentBatches(out).flatMap(([key, records]) => {
        const edge = this.edgeByKey.get(`${stage.id}>${key}`);
        if (!edge) throw ApplicationFailure.nonRetryable(`stage ${stage.id} emitted on unknown edge "${key}"`, "PLAN_MISMATCH");
        // Counted per loop: a record's trips around one loop do not use up the bound of another.
        const rounds = edge.feedback ? { ...unit.rounds, [edge.toOperator]: (unit.rounds?.[edge.toOperator] ?? 0) + 1 } : unit.rounds;
        const target = this.stage(edge.toStage);
        // A broadcast edge gives the batch to every parallel instance of its target, each under its own shard.
        const shards = edge.broadcast ? Array.from({ length: target.parallelism }, (_, i) => `${unit.shard}.${key}@${i}`) : [`${unit.shard}.${key}`];
        return shards.map((shard) =>
          this.run(target, {
            shard,
            ...records,
            edge: key,
            ...(rounds ? { rounds } : {}),
            ...(unit.stream ? { stream: unit.stream } : {}),
          }),
        );
      }),
    );
    return true;
  }
}
