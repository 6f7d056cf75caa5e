/** `sage lineage <job> <topic[partition]@offset>`: where an output record (or a dead letter) of a streaming job came from. */
import { UsageError } from "../core/errors.js";
import { recordLineage } from "../client/lineage/record-lineage.js";
import { withJob } from "./dlq.js";
import { uiLink, type GlobalFlags } from "./common.js";

/** Flags of `sage lineage`. */
export interface LineageFlags extends GlobalFlags {
  json?: boolean;
}

/** Prints the source position, batch, partition workflow, run, attempt and Web UI link of one output record. */
export async function lineageCommand(job: string, ref: string, flags: LineageFlags): Promise<void> {
  await withJob(flags, job, async ({ config, job: found, kafka }) => {
    if (found.kind !== "streaming") throw new UsageError(`job ${found.jobId} is bounded: lineage is kept for streaming jobs' Kafka outputs`);
    const answer = await recordLineage(kafka(), found.pipeline, found.jobId, ref);
    const { batch } = answer;
    const webUi = uiLink(config, { workflowId: batch.workflowId, runId: batch.runId });
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ ...answer, webUi })}\n`);
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
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  });
}
