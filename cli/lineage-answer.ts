/** How `sage lineage` prints a bounded job's file-output answer, and the model calls of any answer. */
import type { FileLineageAnswer } from "../client/lineage/file-lineage.js";
import type { LlmCallLineage, SourcePoint } from "../core/plan/lineage.js";

/** One line per model call: the operator, the model, the request hash and the cached response's key. */
export function llmLines(calls: ReadonlyArray<LlmCallLineage>): string[] {
  return calls.map((c) => `llm       ${c.operator} ${c.model} request ${c.request} key ${c.key ?? c.request}${c.at === null ? " (for the whole batch)" : ""}`);
}

function sourceText(source: SourcePoint): string {
  return source.kind === "file" ? `${source.path} bytes ${source.start}-${source.end}` : `${source.kind} "${source.name}" record ${source.index}`;
}

/** The printed answer for one file-output line (`webUi`: the link to the job workflow's run). */
export function fileLineageLines(answer: FileLineageAnswer, webUi: string | null): string[] {
  const { batch } = answer;
  const split = batch.split ? `split ${batch.split.index} ${JSON.stringify(batch.split.descriptor)}` : "an edge batch";
  return [
    `output    ${answer.output}`,
    `source    ${answer.source ? sourceText(answer.source) : `(past a stage boundary or a mapBatch) one record of ${split}`}`,
    `batch     ${batch.shard} (stage ${batch.stage}, ${split}, finished ${batch.at})`,
    `workflow  ${batch.workflowId}`,
    `run       ${batch.runId}`,
    `attempt   ${batch.attempt}`,
    `Web UI    ${webUi ?? "-"}`,
    ...llmLines(answer.llm),
  ];
}
