/**
 * The barrier in front of the keyed stages of a bounded job: what upstream units write on keyed
 * edges is collected (edge-file references and each unit's largest event time, never records) until
 * every upstream unit is done; then each keyed stage runs once per instance, over its key-group
 * range's whole input. Carried across continue-as-new with the splits already done.
 */
import type { KeyedBatch, KeyedEdgeOutput, KeyedUnit } from "../core/plan/job.js";
import type { StageEdge } from "../core/plan/physical.js";

/** What a keyed stage has received so far: batches per instance, and the largest event time per upstream shard. */
export interface KeyedInputs {
  batches: Record<number, KeyedBatch[]>;
  maxTimestamps: Record<string, number | null>;
}

/** Collected keyed input, by keyed stage id. */
export class KeyedBarrier {
  readonly inputs: Record<string, KeyedInputs>;

  constructor(carried: Record<string, KeyedInputs> = {}) {
    this.inputs = carried;
  }

  /** Takes what upstream unit `shard` wrote on `edge`. */
  add(edge: StageEdge, shard: string, output: KeyedEdgeOutput): void {
    const into = (this.inputs[edge.toStage] ??= { batches: {}, maxTimestamps: {} });
    for (const [instance, ref] of Object.entries(output.refs)) (into.batches[Number(instance)] ??= []).push({ edge: edge.id, shard, ref });
    const known = into.maxTimestamps[shard];
    into.maxTimestamps[shard] = known === undefined || known === null ? output.maxTimestamp : Math.max(known, output.maxTimestamp ?? known);
  }

  /** The units of keyed stage `stage`: one per instance that received records. */
  units(stage: string, parallelism: number): KeyedUnit[] {
    const inputs = this.inputs[stage];
    if (!inputs) return [];
    const units: KeyedUnit[] = [];
    for (let instance = 0; instance < parallelism; instance++) {
      const batches = inputs.batches[instance] ?? [];
      if (batches.length > 0) units.push({ instance, batches, maxTimestamps: inputs.maxTimestamps });
    }
    return units;
  }
}
