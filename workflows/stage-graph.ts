/**
 * Moves work through the stage graph of a plan: runs a stage activity on one unit (a split, a
 * stream batch or a batch of records on an edge), then the downstream stages on what it emitted.
 * Shared by the bounded and the streaming workflow; deterministic, and it never runs user code.
 */
import { ApplicationFailure, proxyActivities, proxyLocalActivities, type ActivityOptions, type LocalActivityOptions } from "@temporalio/workflow";
import { addCounts, deadLetterTotal, sentBatches, stageActivityType, type StageCounts, type StageInput, type StageOutput } from "../core/plan/job.js";
import { edgeKey, type PhysicalPlan, type Stage } from "../core/plan/physical.js";
import { Gate } from "./gate.js";

/** An activity stub as the workflow calls it. */
export type ActivityFn = (...args: unknown[]) => Promise<unknown>;

/** The per-unit part of a stage activity's input. */
export type StageUnit = Pick<StageInput, "shard" | "split" | "batch" | "batchRef" | "edge" | "rounds" | "stream">;

/** What the graph runner updates as stages finish. */
export interface StageTotals {
  counts: StageCounts;
  deadLetters: number;
}

/** Runs stage activities along the edges of a plan. */
export class StageGraph {
  private readonly activity = new Map<string, ActivityFn>();
  private readonly gates = new Map<string, Gate>();
  readonly stageById: Map<string, Stage>;
  private readonly edgeByKey: Map<string, PhysicalPlan["edges"][number]>;

  constructor(
    plan: PhysicalPlan,
    base: ActivityOptions,
    private readonly common: Omit<StageInput, "stage" | "shard">,
    private readonly totals: StageTotals,
    /** Calls an activity (the workflow counts and tracks in-flight calls there). */
    private readonly call: <T>(fn: ActivityFn, ...args: unknown[]) => Promise<T>,
    /** Units a source stage keeps queued per parallel slot beyond the running one (bounded splits; 0 keeps `parallelism` in flight). */
    sourcePrefetch = 0,
    /** Given: stages run as local activities with these options (streaming batches); else as activities with `base`. */
    local?: LocalActivityOptions,
  ) {
    for (const stage of plan.stages) {
      const type = stageActivityType(stage.name);
      const summary = `${stage.operators.length} fused operator(s): ${stage.name}`;
      const proxy = local
        ? proxyLocalActivities<Record<string, ActivityFn>>({ ...local, summary })
        : proxyActivities<Record<string, ActivityFn>>({ ...base, summary });
      this.activity.set(stage.id, proxy[type]!);
      this.gates.set(stage.id, new Gate(stage.source ? stage.parallelism * (1 + sourcePrefetch) : stage.parallelism));
    }
    this.stageById = new Map(plan.stages.map((s) => [s.id, s] as const));
    this.edgeByKey = new Map(plan.edges.map((e) => [`${e.fromStage}>${edgeKey(e)}`, e] as const));
  }

  /**
   * Runs `stage` on `unit`, then its downstream stages on what it emitted. `mayStart` is asked once
   * a slot of the stage is free; false skips the unit (the result is then false). `records` are
   * binary arguments after the input (stream batches), passed only to this first stage.
   */
  async run(stage: Stage, unit: StageUnit, mayStart: () => boolean = () => true, records: Uint8Array[] = []): Promise<boolean> {
    const out = await this.gates.get(stage.id)!.run(async () => {
      if (!mayStart()) return null;
      const input = { ...this.common, stage: stage.id, ...unit };
      return this.call<StageOutput>(this.activity.get(stage.id)!, input, ...records);
    });
    if (!out) return false;
    addCounts(this.totals.counts, out.counts);
    this.totals.deadLetters = deadLetterTotal(this.totals.counts);
    await Promise.all(
      sentBatches(out).flatMap(([key, records]) => {
        const edge = this.edgeByKey.get(`${stage.id}>${key}`);
        if (!edge) throw ApplicationFailure.nonRetryable(`stage ${stage.id} emitted on unknown edge "${key}"`, "PLAN_MISMATCH");
        // Counted per loop: a record's trips around one loop do not use up the bound of another.
        const rounds = edge.feedback ? { ...unit.rounds, [edge.toOperator]: (unit.rounds?.[edge.toOperator] ?? 0) + 1 } : unit.rounds;
        const target = this.stageById.get(edge.toStage)!;
        // A broadcast edge gives the batch to every parallel instance of its target, each under its own shard.
        const shards = edge.broadcast ? Array.from({ length: target.parallelism }, (_, i) => `${unit.shard}.${key}@${i}`) : [`${unit.shard}.${key}`];
        return shards.map((shard) =>
          this.run(target, {
            shard,
            ...records,
            ...(edge.id !== undefined ? { edge: key } : {}),
            ...(rounds ? { rounds } : {}),
            ...(unit.stream ? { stream: unit.stream } : {}),
          }),
        );
      }),
    );
    return true;
  }
}
