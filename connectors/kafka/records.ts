/**
 * Kafka record (de)serialization for the stage runner: source bytes to the values user functions
 * see, and values back to the bytes a sink writes. A value that cannot be decoded or encoded is a
 * `NonRetryableError` naming the topic, partition and offset: the record goes to the dead letters.
 */
import type { KafkaFormat, KafkaRecord, KafkaSinkSpec, KafkaSourceSpec } from "../../core/api/connectors.js";
import { NonRetryableError } from "../../core/errors.js";
import type { BatchRecord } from "./batch-codec.js";

/** Where a record came from, for messages. */
export function positionOf(topic: string, partition: number, offset: number): string {
  return `${topic}[${partition}]@${offset}`;
}

function decodeValue(format: KafkaFormat, rec: BatchRecord, where: string): unknown {
  if (rec.value === null) {
    if (format === "json") throw new NonRetryableError(`record ${where} has no value (a tombstone); format "json" needs a JSON value`);
    return null;
  }
  if (format === "bytes") return rec.valueBase64 ? Buffer.from(rec.value, "base64") : Buffer.from(rec.value, "utf8");
  if (rec.valueBase64) throw new NonRetryableError(`record ${where}: value is not valid UTF-8 (format "${format}")`);
  if (format === "string") return rec.value;
  try {
    return JSON.parse(rec.value) as unknown;
  } catch (err) {
    throw new NonRetryableError(`record ${where}: value is not valid JSON (${(err as Error).message}): ${JSON.stringify(rec.value.slice(0, 80))}`);
  }
}

/** The element a source record becomes: its decoded value, or a `KafkaRecord` with metadata. */
export function decodeSourceRecord(spec: KafkaSourceSpec, topic: string, partition: number, rec: BatchRecord): unknown {
  const where = positionOf(topic, partition, rec.offset);
  const value = decodeValue(spec.format, rec, where);
  if (!spec.withMetadata) return value;
  const record: KafkaRecord<unknown> = {
    topic,
    partition,
    offset: String(rec.offset),
    key: rec.key === null ? null : rec.keyBase64 ? Buffer.from(rec.key, "base64").toString("utf8") : rec.key,
    value,
    headers: rec.headers,
    timestamp: rec.timestamp,
  };
  return record;
}

/** The raw bytes of a source record, for its dead letter. */
export function rawValue(rec: BatchRecord): Buffer | null {
  if (rec.value === null) return null;
  return Buffer.from(rec.value, rec.valueBase64 ? "base64" : "utf8");
}

/** Bytes of a sink value in the sink's format. */
export function encodeSinkValue(spec: KafkaSinkSpec, value: unknown, sinkName: string, encodeJson: (v: unknown) => string): string | Buffer | null {
  switch (spec.format) {
    case "json":
      return encodeJson(value);
    case "string":
      if (typeof value !== "string")
        throw new NonRetryableError(`sink "${sinkName}" (format "string") got a ${value === null ? "null" : typeof value}, not a string`);
      return value;
    case "bytes":
      if (value === null) return null;
      if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      if (typeof value === "string") return Buffer.from(value, "base64");
      throw new NonRetryableError(`sink "${sinkName}" (format "bytes") needs a Uint8Array or a base64 string, got ${typeof value}`);
  }
}

/** Header of a control record on a repartition topic (a watermark), never a data record. */
export const CONTROL_HEADER = "sage-control";
