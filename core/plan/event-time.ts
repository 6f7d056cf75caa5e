/**
 * Where the event time of a keyed operator's input comes from: the `assignTimestampsAndWatermarks`
 * upstream of its keyBy, or a Kafka source's record timestamps. Checked when the graph is finished,
 * so a pipeline that needs event time and has none fails at definition time, naming the operator.
 */
import type { WatermarkSpec } from "../api/time.js";
import { PipelineDefinitionError } from "../errors.js";
import type { LogicalNode } from "./logical.js";

/** A Kafka source without a strategy: record timestamps, taken as monotonous per partition. */
const KAFKA_DEFAULT: WatermarkSpec = { outOfOrdernessMs: 0, idlenessMs: null };

/** True when the keyed operator cannot work without event time. */
function needsEventTime(node: LogicalNode): boolean {
  const k = node.keyed!;
  if (k.op === "intervalJoin") return true;
  if (k.op === "window" || k.op === "windowJoin") return k.window.kind !== "count" && k.window.time === "event";
  return false;
}

/** The strategy reaching `id` from upstream, or null; throws on a feedback loop. */
function strategyOf(pipeline: string, byId: Map<string, LogicalNode>, id: string, keyBy: LogicalNode): WatermarkSpec | null {
  const node = byId.get(id);
  if (!node) return null;
  if (node.kind === "feedback" || node.inputs.some((i) => i.feedback)) {
    throw new PipelineDefinitionError(
      `pipeline "${pipeline}": keyBy "${keyBy.name}" reads records that went around feedback loop "${node.name}"; keyed operators after a feedback edge are not supported`,
    );
  }
  if (node.kind === "timestamps") return node.watermark!;
  if (node.kind === "source") return node.source?.kind === "kafka" ? KAFKA_DEFAULT : null;
  const found = node.inputs.map((i) => strategyOf(pipeline, byId, i.from, keyBy));
  if (found.length === 0 || found.some((s) => s === null)) return null;
  // A union of timed inputs: the loosest bound holds for all of them.
  return found.reduce((a, b) => (b!.outOfOrdernessMs > a!.outOfOrdernessMs ? b : a));
}

/** Sets `eventTime` on every keyed node, checking its inputs are keyBy and that it has the event time it needs. */
export function resolveEventTime(pipeline: string, nodes: LogicalNode[]): void {
  const byId = new Map(nodes.map((n) => [n.id, n] as const));
  for (const node of nodes) {
    if (node.kind !== "keyed") continue;
    node.eventTime = node.inputs.map((input) => {
      const keyBy = byId.get(input.from);
      if (keyBy?.kind !== "keyBy") {
        throw new PipelineDefinitionError(`pipeline "${pipeline}": keyed operator "${node.name}" must read a keyBy, but reads "${keyBy?.name ?? input.from}"`);
      }
      return strategyOf(pipeline, byId, keyBy.inputs[0]!.from, keyBy);
    });
    if (needsEventTime(node) && node.eventTime.some((s) => s === null)) {
      throw new PipelineDefinitionError(
        `pipeline "${pipeline}": "${node.name}" works in event time, but its input has no timestamps: ` +
          `call assignTimestampsAndWatermarks(WatermarkStrategy...) before keyBy (Kafka sources default to the record timestamp)`,
      );
    }
  }
}
