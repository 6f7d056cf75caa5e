/** How `sage lineage` shows a keyed output's inputs: the summary from its `sage-inputs` header, and with `--expand` every input. */
import { expandInputs, outputInputs, type ExpandedInputs } from "../client/lineage/record-inputs.js";
import { LineageNotFoundError } from "../client/lineage/record-lineage.js";
import type { KafkaClient } from "../connectors/kafka/client.js";
import { INPUTS_HEADER, splitOrigin, type OutputInputs } from "../core/plan/input-summary.js";
import { positionOf } from "../connectors/kafka/records.js";

/** The inputs as `--json` gives them: the summary with positions spelled `topic[partition]@offset`, and the expansion if asked. */
export function inputsJson(inputs: OutputInputs, expanded: ExpandedInputs | null): Record<string, unknown> {
  const { summary } = inputs;
  const spell = (origin: string, offset: number): string => {
    const { topic, partition } = splitOrigin(origin);
    return positionOf(topic, partition, offset);
  };
  return {
    operator: inputs.operator,
    key: JSON.parse(inputs.key) as unknown,
    window: inputs.window,
    count: summary.n,
    ranges: Object.entries(summary.r).map(([origin, [lo, hi]]) => `${spell(origin, lo)}-${hi}`),
    sample: summary.s.map(([origin, offset]) => spell(origin, offset)),
    ...(expanded ? { expanded } : {}),
  };
}

/** The lines `sage lineage` prints for them. */
export function inputLines(inputs: OutputInputs, expanded: ExpandedInputs | null): string[] {
  const json = inputsJson(inputs, null) as { ranges: string[]; sample: string[] };
  const { summary, window } = inputs;
  const lines = [
    `inputs    ${summary.n} record(s) of key ${inputs.key}${window ? ` in window [${window.start}, ${window.end})` : ""} (operator ${inputs.operator})`,
    `ranges    ${json.ranges.join(", ") || "-"}`,
    `sample    ${json.sample.join(", ") || "-"}${summary.s.length < summary.n ? ` (${summary.s.length} of ${summary.n}; --expand lists all)` : ""}`,
  ];
  if (expanded) {
    const how = expanded.exact ? "as many as counted" : `inexact: the summary counts ${summary.n}`;
    lines.push(`expanded  ${expanded.inputs.length} (from the ${expanded.from}, ${how})`, ...expanded.inputs.map((p) => `  ${p}`));
  }
  return lines;
}

/** A keyed output's inputs as printed and as JSON; null for an output that names none (`expand` then fails: there is nothing to expand). */
export async function keyedInputsOf(
  kafka: KafkaClient,
  job: { pipeline: string; jobId: string },
  ref: string,
  expand: boolean,
): Promise<{ lines: string[]; json: Record<string, unknown> } | null> {
  const inputs = await outputInputs(kafka, ref);
  if (!inputs) {
    if (expand) throw new LineageNotFoundError(`${ref} has no ${INPUTS_HEADER} header: only a keyed output (a window, an aggregate, a join) lists its inputs`);
    return null;
  }
  const expanded = expand ? await expandInputs(kafka, job.pipeline, job.jobId, inputs) : null;
  return { lines: inputLines(inputs, expanded), json: inputsJson(inputs, expanded) };
}
