/**
 * Source and sink descriptors: plain JSON data in the plan, implemented by `connectors/` in the
 * worker. A descriptor carries its element type for the fluent API.
 */
import { toPlanString, type PlanString, type StringOrParam } from "./params.js";

/** Plan form of a bounded source. */
export type SourceSpec =
  | { kind: "file"; format: "lines" | "jsonl"; path: PlanString; splitBytes?: number }
  | { kind: "collection"; size: number; contentHash: string }
  | { kind: "function" };

/** Plan form of a sink. */
export type SinkSpec = { kind: "file"; format: "jsonl"; path: PlanString } | { kind: "print"; prefix: string } | { kind: "function" };

/** A source with its element type. */
export interface SourceDescriptor<T> {
  readonly spec: SourceSpec;
  /** Phantom: the element type. */
  readonly __type?: T;
}

/** A sink with its element type. */
export interface SinkDescriptor<T> {
  readonly spec: SinkSpec;
  /** Phantom: the element type. */
  readonly __type?: T;
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
