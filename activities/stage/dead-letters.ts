/**
 * Records that fail for good: one dead letter each (operator, error, attempts and the record), to
 * the unit's dead-letter shard file (bounded jobs; published at commit) or to the dead-letter topic
 * in the unit's transaction (streaming jobs).
 */
import type { KeyedRecord } from "../../core/plan/key-groups.js";
import { join } from "node:path";
import { rm } from "node:fs/promises";
import { SageError } from "../../core/errors.js";
import type { LogicalNode } from "../../core/plan/logical.js";
import { REDRIVE_HEADERS, type Lineage } from "../../core/plan/redrive.js";
import { ShardWriter, shardFileName } from "../../connectors/file/staging.js";
import type { StreamCommit } from "./stream-commit.js";
import type { StageUnit } from "./unit.js";

/** Longest error text a dead letter's Kafka header carries. */
const MAX_ERROR_HEADER = 2000;
/** Most characters of an error's stack kept in a dead letter (file entry or header). */
const MAX_STACK = 4000;

/** A JSON copy of `value`, or its string form when JSON cannot hold it. */
function safeJson(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value) ?? "null") as unknown;
  } catch {
    return String(value);
  }
}

/** True for a record as a keyed edge carries it (`KeyedRecord`). */
function isKeyedRecord(value: unknown): value is KeyedRecord {
  return (
    typeof value === "object" && value !== null && typeof (value as KeyedRecord).k === "string" && typeof (value as KeyedRecord).g === "number" && "v" in value
  );
}

/** The dead letters of one stage run. */
export class DeadLetters {
  private readonly path: string;
  private readonly file: ShardWriter;
  private written = 0;
  /** The lineage of the re-driven record in flight (null: not a re-driven record): a new failure adds to its history. */
  lineage: Lineage | null = null;

  constructor(
    private readonly unit: StageUnit,
    /** Streaming: the unit's Kafka transaction, where dead letters go instead of the file. */
    private readonly stream: StreamCommit | null,
  ) {
    this.path = join(unit.staging, "_dead-letters", shardFileName(unit.input.shard));
    this.file = new ShardWriter(this.path);
  }

  /** Writes one dead letter: operator, error, attempts, the record itself and, for a re-driven record, its earlier failures. */
  async write(node: LogicalNode, dead: unknown, err: unknown, attempts: number): Promise<void> {
    const { input, logger } = this.unit;
    // A keyed operator's input travels wrapped with its key: the dead letter is the user's record, with the key beside it.
    const keyed = node.kind === "keyed" && isKeyedRecord(dead);
    const record = keyed ? dead.v : dead;
    this.unit.countsOf(node.id).dead++;
    this.written++;
    // A thrown non-Error is shown as an Error with its string form.
    const name = err instanceof Error ? err.name : "Error";
    const message = err instanceof Error ? err.message : String(err);
    // Where it was thrown: in the user's function, on whichever thread ran the stage.
    const stack = err instanceof Error && err.stack ? err.stack.slice(0, MAX_STACK) : undefined;
    const entry = {
      pipeline: input.pipeline,
      jobId: input.jobId,
      operator: node.id,
      operatorName: node.name,
      shard: input.shard,
      attempts,
      error: { name, message, ...(err instanceof SageError ? { code: err.code } : {}), ...(stack ? { stack } : {}) },
      record: safeJson(record),
      ...(keyed ? { key: dead.k } : {}),
      at: new Date().toISOString(),
      ...(this.unit.eventTime !== undefined ? { timestamp: this.unit.eventTime } : {}),
      ...(this.lineage
        ? { redrive: this.lineage.redrive, history: this.lineage.history, ...(this.lineage.origin ? { origin: this.lineage.origin } : {}) }
        : {}),
    };
    logger.warn({ operator: node.id, attempts, error: message }, "record sent to dead letters");
    if (this.stream) {
      const source = this.lineage?.origin ?? this.stream.sourcePosition();
      const timestamp = this.stream.current?.timestamp;
      this.stream.write(this.stream.stream.deadLetterTopic, {
        key: this.stream.sourceKey(),
        value: record instanceof Buffer ? record : JSON.stringify(entry.record),
        headers: this.stream.withLineage({
          "sage-pipeline": input.pipeline,
          "sage-job": input.jobId,
          "sage-operator": node.id,
          "sage-attempts": String(attempts),
          "sage-error": `${name}: ${message}`.slice(0, MAX_ERROR_HEADER),
          ...(stack ? { "sage-error-stack": stack } : {}),
          ...(source ? { "sage-source": source } : {}),
          ...(keyed ? { "sage-key": dead.k } : {}),
          ...(timestamp !== undefined ? { [REDRIVE_HEADERS.timestamp]: timestamp } : {}),
          ...(this.lineage ? { [REDRIVE_HEADERS.redrive]: this.lineage.redrive, [REDRIVE_HEADERS.history]: JSON.stringify(this.lineage.history) } : {}),
        }),
      });
      return;
    }
    await this.file.writeLine(JSON.stringify(entry));
  }

  /** Closes the shard file (bounded jobs that wrote any). */
  async finish(): Promise<void> {
    if (!this.stream && this.written > 0) await this.file.finish();
  }

  /** Drops what this attempt wrote. */
  async discard(): Promise<void> {
    await this.file.discard();
  }

  /** Removes what an earlier attempt of this shard left in the dead letters. */
  async clearEarlierAttempt(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
