/**
 * The memo key of one stage run in a what-if: what the stage does (its operators' code hashes and
 * configuration, where its outputs go) and what it read. A stage whose key is unchanged gives the
 * same outputs, so a what-if reuses what an earlier run of it produced. Pure.
 */
import { canonicalJson, sha256Hex } from "../plan/hash.js";
import type { PhysicalPlan, Stage } from "../plan/physical.js";

/**
 * Hash of what stage `stage` of `plan` does: each operator's node (kind, `fnHash`, configuration,
 * inputs, source or sink), the stage's shape and the edges that leave it. Parameters are not in it:
 * they go into the unit's key (`stageUnitKey`).
 */
export function stageHashOf(plan: PhysicalPlan, stage: Stage): string {
  const nodes = stage.operators.map((id) => plan.nodes.find((n) => n.id === id) ?? id);
  const leaving = plan.edges.filter((e) => e.fromStage === stage.id);
  return sha256Hex(
    canonicalJson({
      version: plan.version,
      parallelism: plan.parallelism,
      stage: { operators: stage.operators, parallelism: stage.parallelism, source: stage.source, keyed: stage.keyed ?? false },
      nodes,
      leaving,
      deadLetter: plan.deadLetter,
    }),
  );
}

/** Memo key of one unit of a stage: the stage's hash, the hash of its input, and the job's parameters. */
export function stageUnitKey(stageHash: string, inputHash: string, params: Readonly<Record<string, string>>): string {
  return sha256Hex(`${stageHash}\n${inputHash}\n${canonicalJson(params)}`);
}
