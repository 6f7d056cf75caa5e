/**
 * `sage lineage <job> <output>`: where an output record of a streaming job (`topic[partition]@offset`,
 * a dead letter too) or a line of a bounded job's file output (`path:line`) came from.
 */
import { recordLineage } from "../client/lineage/record-lineage.js";
import { fileLineage } from "../client/lineage/file-lineage.js";
import { fileLineageLines, llmLines } from "./lineage-answer.js";
import { keyedInputsOf } from "./lineage-inputs.js";
import { withJob } from "./dlq.js";
import { uiLink, type GlobalFlags } from "./common.js";

/** Flags of `sage lineage`. */
export interface LineageFlags extends GlobalFlags {
  json?: boolean;
  /** A keyed output: list every input, not only the summary. */
  expand?: boolean;
}

/** Prints the source position, batch, partition workflow, run, attempt and Web UI link of one output record. */
export async function lineageCommand(job: string, ref: string, flags: LineageFlags): Promise<void> {
  await withJob(flags, job, async ({ config, job: found, kafka }) => {
    if (found.kind !== "streaming") {
      const answer = await fileLineage(config["data-dir"], found.pipeline, found.jobId, ref);
      const webUi = uiLink(config, { workflowId: answer.batch.workflowId, runId: answer.batch.runId });
      process.stdout.write(flags.json ? `${JSON.stringify({ ...answer, webUi })}\n` : `${fileLineageLines(answer, webUi).join("\n")}\n`);
      return;
    }
    const answer = await recordLineage(kafka(), found.pipeline, found.jobId, ref);
    const { batch } = answer;
    const webUi = uiLink(config, { workflowId: batch.workflowId, runId: batch.runId });
    const keyed = await keyedInputsOf(kafka(), found, ref, flags.expand === true);
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ ...answer, webUi, ...(keyed ? { inputs: keyed.json } : {}) })}\n`);
      return;
    }
    const lines = [
      `output    ${answer.output}`,
      `source    ${answer.source ?? `(past a stage boundary) one of ${batch.slices.join(", ")}`}`,
      `batch     ${batch.batch} (stage ${batch.stage}, read ${batch.slices.join(", ")}, committed ${batch.at})`,
      `workflow  ${batch.workflowId}`,
      `run       ${batch.runId}`,
      `attempt   ${batch.attempt}`,
      `Web UI    ${webUi ?? "-"}`,
      ...llmLines(answer.llm),
      ...(keyed?.lines ?? []),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  });
}
