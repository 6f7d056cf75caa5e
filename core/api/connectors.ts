/**
 * Source and sink descriptors: plain JSON data in the plan, implemented by `connectors/` in the
 * worker. A descriptor carries its element type for the fluent API.
 */
import { toPlanString, type PlanString, type StringOrParam } from "./params.js";
import { isTopicName } from "../names.js";

/** Plan form of a bounded source. */
export type SourceSpec =
  | { kind: "file"; format: "lines" | "jsonl"; path: PlanString; splitBytes?: number }
  | { kind: "collection"; size: number; contentHash: string }
  | { kind: "function" }
  | KafkaSourceSpec;

/** How Kafka record values (and keys) are turned into records and back. */
export type KafkaFormat = "json" | "string" | "bytes";

/** Plan form of an unbounded Kafka source (a streaming job). */
export interface KafkaSourceSpec {
  kind: "kafka";
  topics: string[];
  /** Consumer group of the shim; committed offsets are only a restart hint (the workflow's offset table is the truth). */
  groupId: string;
  startFrom: "earliest" | "latest";
  format: KafkaFormat;
  /** Hand records on as `KafkaRecord<T>` (key, headers, timestamp, offset) rather than the bare value. */
  withMetadata: boolean;
}

/** Plan form of a Kafka sink: transactional, exactly once per batch. */
export interface KafkaSinkSpec {
  kind: "kafka";
  topic: string;
  format: KafkaFormat;
  /** True when the sink has a key function (the operator's function); else the source record's key passes through. */
  keyed: boolean;
}

/** Plan form of a sink. */
export type SinkSpec = { kind: "file"; format: "jsonl"; path: PlanString } | { kind: "print"; prefix: string } | { kind: "function" } | KafkaSinkSpec;

/** A source with its element type. */
export interface SourceDescriptor<T> {
  readonly spec: SourceSpec;
  /** Phantom: the element type. */
  readonly __type?: T;
}

/** A sink with its element type. */
export interface SinkDescriptor<T> {
  readonly spec: SinkSpec;
  /** A function the sink calls per record (the Kafka sink's key function); hashed into the plan. */
  readonly fn?: unknown;
  /** Phantom: the element type, contravariant (a sink of `{ key: string }` takes any record with a string key). */
  readonly __type?: (value: T) => void;
}

/** Options of file sources. */
export interface FileSourceOptions {
  /** Target bytes per split (files are split by byte range on line boundaries). */
  splitBytes?: number;
}

/** Bounded file sources, splittable by byte range. */
export const FileSource = {
  /** Each line of a UTF-8 text file (without its line break) is one record. */
  lines(path: StringOrParam, options: FileSourceOptions = {}): SourceDescriptor<string> {
    return { spec: { kind: "file", format: "lines", path: toPlanString(path), ...options } };
  },
  /** Each line of a JSON Lines file is one record; a line that is not JSON goes to the dead letters. */
  jsonl<T = unknown>(path: StringOrParam, options: FileSourceOptions = {}): SourceDescriptor<T> {
    return { spec: { kind: "file", format: "jsonl", path: toPlanString(path), ...options } };
  },
};

/** File sinks: exactly once per job through per-shard staging and an atomic rename at commit. */
export const FileSink = {
  /** One JSON document per line; the file appears atomically when the job commits. */
  jsonl<T = unknown>(path: StringOrParam): SinkDescriptor<T> {
    return { spec: { kind: "file", format: "jsonl", path: toPlanString(path) } };
  },
};

/** Prints each record as a JSON line on the worker's stdout (at least once: a retried shard prints again). */
export const PrintSink = {
  /** Print with an optional prefix. */
  stdout<T = unknown>(options: { prefix?: string } = {}): SinkDescriptor<T> {
    return { spec: { kind: "print", prefix: options.prefix ?? "" } };
  },
};

/** A Kafka record with its metadata (`KafkaSource.topic(..., { withMetadata: true })`). */
export interface KafkaRecord<T> {
  topic: string;
  partition: number;
  /** Offset as a decimal string (Kafka offsets are 64-bit). */
  offset: string;
  key: string | null;
  value: T;
  headers: Record<string, string>;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
}

/** Options of `KafkaSource.topic`. */
export interface KafkaSourceOptions {
  /** Consumer group of the shim (default: the first topic's name). */
  groupId?: string;
  /** Where a group without committed offsets starts (default `earliest`). */
  startFrom?: "earliest" | "latest";
  /** Value format (default `json`: a value that is not JSON goes to the dead-letter topic). */
  format?: KafkaFormat;
}

/** Unbounded Kafka sources: a job with one runs until `sage stop`. */
export const KafkaSource = {
  /** Each record of the topic(s) is one element: the decoded value, or a `KafkaRecord` with `withMetadata: true`. */
  topic<T = unknown>(topics: string | string[], options: KafkaSourceOptions & { withMetadata?: false } = {}): SourceDescriptor<T> {
    return { spec: kafkaSourceSpec(topics, options, false) };
  },
  /** Like `topic`, with each element a `KafkaRecord<T>` carrying key, headers, timestamp and offset. */
  records<T = unknown>(topics: string | string[], options: KafkaSourceOptions = {}): SourceDescriptor<KafkaRecord<T>> {
    return { spec: kafkaSourceSpec(topics, options, true) };
  },
};

function kafkaSourceSpec(topics: string | string[], options: KafkaSourceOptions, withMetadata: boolean): KafkaSourceSpec {
  const list = Array.isArray(topics) ? topics : [topics];
  if (list.length === 0 || list.some((t) => !isTopicName(t))) {
    throw new TypeError(`KafkaSource: topic names must be 1-249 characters of [A-Za-z0-9._-], got ${JSON.stringify(topics)}`);
  }
  return {
    kind: "kafka",
    topics: list,
    groupId: options.groupId ?? list[0]!,
    startFrom: options.startFrom ?? "earliest",
    format: options.format ?? "json",
    withMetadata,
  };
}

/** Options of `KafkaSink.topic`. */
export interface KafkaSinkOptions<T> {
  /** The output record's key (default: the key of the source record it came from). */
  key?: (value: T) => string | null;
  /** Value format (default `json`; `string` writes strings as they are; `bytes` takes Uint8Array or base64). */
  format?: KafkaFormat;
}

/** Kafka sinks: each batch's outputs and its progress marker are written in one transaction. */
export const KafkaSink = {
  /** Writes each record to `topic`; readers with `read_committed` see every record exactly once. */
  topic<T = unknown>(topic: string, options: KafkaSinkOptions<T> = {}): SinkDescriptor<T> {
    if (!isTopicName(topic)) {
      throw new TypeError(`KafkaSink: topic name must be 1-249 characters of [A-Za-z0-9._-], got ${JSON.stringify(topic)}`);
    }
    if (options.key !== undefined && typeof options.key !== "function") throw new TypeError(`KafkaSink "${topic}": key must be a function`);
    return { spec: { kind: "kafka", topic, format: options.format ?? "json", keyed: options.key !== undefined }, fn: options.key };
  },
};
