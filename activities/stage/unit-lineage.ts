/**
 * What a stage unit tracks for per-record lineage: the source record in flight (a bounded source's
 * byte range or index; a streaming unit asks its Kafka side), and the model calls made meanwhile,
 * each noted at that record (or for the whole batch when no single record is in flight).
 */
import type { CallTrail, TrailCall } from "../../connectors/llm/call-trail.js";
import type { LlmCallLineage } from "../../core/plan/lineage.js";

/** The lineage a unit collects as its records run. */
export class UnitLineage implements CallTrail {
  /**
   * Bounded sources: the record in flight, its first byte (files) or its index (a collection, a
   * user source's split); -1 for none (past a stage boundary, inside a `mapBatch` call).
   */
  start = -1;
  /** Its length in bytes (files); -1 for an index. */
  length = -1;
  /** The model calls made so far. */
  readonly calls: LlmCallLineage[] = [];
  /** True inside a `mapBatch` call: no single record is in flight. */
  batching = false;
  /** Inside a bounded `mapBatch` call: where its records came from. */
  private batch: string[] | undefined = undefined;

  /** `where` names the record in flight (null: none); by default the bounded `start`. */
  constructor(private readonly where: () => string | null = () => (this.start < 0 ? null : String(this.start))) {}

  note(call: TrailCall): void {
    this.calls.push({
      at: this.batching ? null : this.where(),
      operator: call.operator,
      model: call.model,
      request: call.request,
      ...(call.key !== call.request ? { key: call.key } : {}),
      ...(this.batching && this.batch ? { batch: this.batch } : {}),
    });
  }

  /** Inside `batchWide`: a `mapBatch` call starts, for the whole batch (`records`: where its records came from, when known). */
  enterBatch(records?: string[]): void {
    this.start = -1;
    this.batching = true;
    this.batch = records;
  }

  /** Inside `batchWide`: the result of the record at `start` (`length` bytes) goes on, and what it shapes is that record's again. */
  resume(start: number, length: number): void {
    this.start = start;
    this.length = length;
    this.batching = false;
  }

  /** Runs `work` with no single record in flight (a `mapBatch` call: its calls belong to the batch, and its outputs unless `resume` says whose). */
  async batchWide<T>(work: () => Promise<T>): Promise<T> {
    const { start, length, batching, batch } = this;
    this.enterBatch();
    try {
      return await work();
    } finally {
      this.start = start;
      this.length = length;
      this.batching = batching;
      this.batch = batch;
    }
  }
}
