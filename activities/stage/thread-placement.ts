/**
 * Which stage units a stage thread may run: CPU-bound work of a bounded job whose input the thread
 * reads as bytes itself (a file split, a collection slice, an edge batch file) and whose output it
 * stages itself (sink shards, edge files, dead letters). Everything else stays on the main thread:
 * streaming units (Kafka transactions), keyed stages (state backends), re-drives, inline batches,
 * user sources and sinks (they may wait on I/O) and functions marked `onMainThread` (LLM operators).
 */
import { runsOnMainThread } from "../../core/api/functions.js";
import type { CompiledPipeline } from "../../core/api/pipeline.js";
import type { StageInput } from "../../core/plan/job.js";
import type { Stage } from "../../core/plan/physical.js";

/** Where a stage unit runs, and why it stays on the main thread. */
export type ThreadPlacement = { thread: true } | { thread: false; why: string };

/** Where `input` (a unit of `stage` of `compiled`) runs. */
export function threadPlacement(input: StageInput, compiled: CompiledPipeline, stage: Stage): ThreadPlacement {
  const main = (why: string): ThreadPlacement => ({ thread: false, why });
  if (input.stream) return main("a streaming unit writes in a Kafka transaction");
  if (input.runtime.redrive) return main("a re-drive reads the dead letters");
  if (input.keyed || stage.keyed) return main("a keyed stage keeps state");
  if (!stage.source && !input.batchRef) return main("its records came inline");
  const nodes = new Map(compiled.plan.nodes.map((n) => [n.id, n] as const));
  for (const id of stage.operators) {
    const node = nodes.get(id);
    if (!node) return main(`the plan has no operator "${id}"`);
    if (node.kind === "keyed") return main(`operator "${node.name}" keeps keyed state`);
    if (node.kind === "source" && node.source?.kind !== "file" && node.source?.kind !== "collection") return main(`source "${node.name}" is a user function`);
    if (node.kind === "sink" && node.sink?.kind !== "file") return main(`sink "${node.name}" writes outside the staging directory`);
    if (runsOnMainThread(compiled.functions.get(id))) return main(`operator "${node.name}" is marked to run on the main thread`);
  }
  return { thread: true };
}
