/**
 * The edges that leave a stage for another stage (after Flink's `RecordWriterOutput`): each record
 * is encoded and checked against the payload budget, then kept inline (streaming jobs: records
 * travel through history) or as a JSON line for the edge file written at the end of the unit
 * (bounded jobs: only the file's reference travels). A feedback edge past its round bound
 * dead-letters the record instead.
 */
import { NonRetryableError, PayloadBudgetError } from "../../core/errors.js";
import type { EdgeBatchRef } from "../../core/plan/job.js";
import { edgeKey, type StageEdge } from "../../core/plan/physical.js";
import { writeEdgeBatch } from "../../connectors/file/edge-batches.js";
import { checkRecordSize, encodeRecord } from "../record-codec.js";
import type { DeadLetters } from "./dead-letters.js";
import type { Push } from "./push.js";
import type { StageUnit } from "./unit.js";

/** What one stage run sends on its outgoing edges. */
export class EdgeOutputs {
  /** Streaming jobs: the records per outgoing edge, inline. */
  readonly inline: Record<string, unknown[]> = {};
  /** Bounded jobs: JSON lines per outgoing edge, written to an edge file at the end of the unit. */
  private readonly lines: Record<string, string[]> = {};
  /** Bytes sent on all edges so far, against `maxBatchBytes`. */
  private bytes = 0;

  constructor(
    private readonly unit: StageUnit,
    private readonly deadLetters: DeadLetters,
  ) {}

  /** The push that sends records on `edge`. */
  push(edge: StageEdge): Push {
    const { input, stage } = this.unit;
    const budget = input.runtime.maxBatchBytes;
    const from = this.unit.node(edge.fromOperator);
    const producer = from.name;
    const key = edgeKey(edge);
    const streaming = input.stream !== undefined;
    const bucket: unknown[] = streaming ? (this.inline[key] ??= []) : (this.lines[key] ??= []);
    const loop = edge.feedback ? this.unit.node(edge.toOperator) : null;
    const maxRounds = loop?.feedback?.maxRounds ?? 0;
    const round = loop ? (input.rounds?.[loop.id] ?? 0) : 0;
    return (v) => {
      if (loop && round + 1 > maxRounds) {
        return this.deadLetters.write(
          from,
          v,
          new NonRetryableError(`feedback "${loop.name}": the record is still looping after ${maxRounds} round(s), its bound`),
          1,
        );
      }
      const json = encodeRecord(v, producer);
      checkRecordSize(json, producer, budget);
      this.bytes += json.length;
      if (this.bytes > budget) {
        throw new PayloadBudgetError(
          `stage "${stage.name}" emitted more than ${budget} bytes toward stage ${edge.toStage} for shard ${input.shard}; ` +
            `lower execution.split-bytes or raise execution.max-batch-bytes`,
        );
      }
      bucket.push(streaming ? v : json);
    };
  }

  /** Bounded jobs: writes each edge's records to its edge file; their references are what history carries. */
  async send(): Promise<Record<string, EdgeBatchRef>> {
    const refs: Record<string, EdgeBatchRef> = {};
    for (const [key, lines] of Object.entries(this.lines)) {
      if (lines.length > 0) refs[key] = await writeEdgeBatch(this.unit.staging, `${this.unit.input.shard}.${key}`, lines);
    }
    return refs;
  }
}
