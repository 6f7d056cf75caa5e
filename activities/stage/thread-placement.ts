/**
 * Which stage units a stage thread may run. A bounded unit: CPU-bound work whose input the thread
 * reads as bytes itself (a file split, a collection slice, an edge batch file) and whose output it
 * stages itself (sink shards, edge files, dead letters). A streaming unit: the chain of a source
 * stage of stateless operators over the unit's Kafka batches (their bytes cross to the thread),
 * whose outputs are Kafka messages the thread hands back; the main thread keeps the transaction
 * (fenced, committed). Everything else stays on the main thread: keyed stages (state backends),
 * streaming units past a stage boundary (their records came inline), re-drives, inline batches,
 * user sources and sinks (they may wait on I/O) and functions marked `onMainThread` (LLM operators).
 */
import { runsOnMainThread } from "../../core/api/functions.js";
import type { CompiledPipeline } from "../../core/api/pipeline.js";
import type { StageInput } from "../../core/plan/job.js";
import type { Stage } from "../../core/plan/physical.js";

/** Where a stage unit runs, and why it stays on the main thread. */
export type ThreadPlacement = { thread: true } | { thread: false; why: string };

const main = (why: string): ThreadPlacement => ({ thread: false, why });

/** Where `input` (a unit of `stage` of `compiled`) runs. */
export function threadPlacement(input: StageInput, compiled: CompiledPipeline, stage: Stage): ThreadPlacement {
  if (input.runtime.redrive) return main("a re-drive reads the dead letters");
  if (input.keyed || stage.keyed) return main("a keyed stage keeps state");
  if (input.stream) return streamPlacement(compiled, stage);
  if (!stage.source && !input.batchRef) return main("its records came inline");
  return operatorsPlacement(compiled, stage, false);
}

/** Where the units of `stage` of a streaming job run (the same for all of them). */
export function streamPlacement(compiled: CompiledPipeline, stage: Stage): ThreadPlacement {
  if (stage.keyed) return main("a keyed stage keeps state");
  if (!stage.source) return main("a streaming unit past a stage boundary came inline");
  return operatorsPlacement(compiled, stage, true);
}

/** Whether the operators of `stage` may run on a thread: stateless, reading and writing only what a thread reads and writes. */
function operatorsPlacement(compiled: CompiledPipeline, stage: Stage, streaming: boolean): ThreadPlacement {
  const nodes = new Map(compiled.plan.nodes.map((n) => [n.id, n] as const));
  for (const id of stage.operators) {
    const node = nodes.get(id);
    if (!node) return main(`the plan has no operator "${id}"`);
    if (node.kind === "keyed") return main(`operator "${node.name}" keeps keyed state`);
    const source = node.source?.kind;
    if (node.kind === "source" && (streaming ? source !== "kafka" : source !== "file" && source !== "collection"))
      return main(`source "${node.name}" is ${streaming ? "not a Kafka source" : "a user function"}`);
    const sink = node.sink?.kind;
    if (node.kind === "sink" && sink !== (streaming ? "kafka" : "file"))
      return main(`sink "${node.name}" writes outside ${streaming ? "the unit's transaction" : "the staging directory"}`);
    if (runsOnMainThread(compiled.functions.get(id))) return main(`operator "${node.name}" is marked to run on the main thread`);
  }
  return { thread: true };
}
