/**
 * The Environment API (SAGE Core `StreamExecutionEnvironment`): the entry point of a pipeline's
 * build function. Sources start here; job parameters are read here.
 */
import { PipelineDefinitionError } from "../errors.js";
import type { GraphBuilder, OperatorOptions } from "../plan/builder.js";
import { canonicalJson, sha256Hex } from "../plan/hash.js";
import type { SinkDescriptor, SourceDescriptor } from "./connectors.js";
import { DataStream, FeedbackStream } from "./datastream.js";
import "./keyed.js";
import type { SourceFunction } from "./functions.js";
import { ParamRef } from "./params.js";
import { NAME_CHARS, isName } from "../names.js";

function isSourceDescriptor(value: unknown): value is SourceDescriptor<unknown> {
  return typeof value === "object" && value !== null && "spec" in value;
}

/** Builds the streams of one pipeline. */
export class StreamExecutionEnvironment {
  /** @internal */
  constructor(private readonly builder: GraphBuilder) {}

  /** Name of the pipeline being built. */
  get pipeline(): string {
    return this.builder.pipeline;
  }

  /** A job parameter given at submit time (`--param name=value`); the plan holds only the reference. */
  param(name: string, options: { default?: string } = {}): ParamRef {
    if (!isName(name)) throw new PipelineDefinitionError(`parameter name "${name}" must match ${NAME_CHARS}`);
    return new ParamRef(name, options.default);
  }

  /** Default parallelism of every operator of this job. */
  setParallelism(parallelism: number): this {
    this.builder.setParallelism(parallelism);
    return this;
  }

  /** Where records that fail for good go (default: a JSONL file under the data dir); a file sink. */
  setDeadLetterSink(sink: SinkDescriptor<unknown>): this {
    // Only file dead letters are published at commit; any other kind would be silently ignored.
    if (sink.spec.kind !== "file") {
      throw new PipelineDefinitionError(`pipeline "${this.pipeline}": setDeadLetterSink takes a file sink (FileSink.jsonl(...)), got a ${sink.spec.kind} sink`);
    }
    this.builder.deadLetter = sink.spec;
    return this;
  }

  /**
   * A bounded stream of the given items. The items live in the pipeline module, so workers read
   * them from their own copy: only index ranges enter workflow history.
   */
  fromCollection<T>(items: readonly T[], options: OperatorOptions = {}): DataStream<T> {
    let contentHash: string;
    try {
      contentHash = sha256Hex(canonicalJson(items));
    } catch (err) {
      throw new PipelineDefinitionError(`fromCollection${options.name ? ` "${options.name}"` : ""}: items must be JSON-serializable (${String(err)})`);
    }
    const id = this.builder.add({
      kind: "source",
      inputs: [],
      fn: items,
      options,
      source: { kind: "collection", size: items.length, contentHash },
    });
    return new DataStream<T>(this.builder, id);
  }

  /**
   * The open end of a feedback loop (after SAGE's `from_future`): records given to
   * `stream.fillFeedback(fb)` come out here one round later. `maxRounds` bounds every record's
   * trips around the loop; one that would exceed it goes to the dead letters, so a cycle always ends.
   */
  feedback<T>(name: string, options: { maxRounds: number; parallelism?: number }): FeedbackStream<T> {
    if (!Number.isInteger(options.maxRounds) || options.maxRounds < 1) {
      throw new PipelineDefinitionError(`feedback "${name}": maxRounds must be an integer >= 1, got ${String(options.maxRounds)}`);
    }
    const id = this.builder.add({
      kind: "feedback",
      inputs: [],
      fn: undefined,
      options: { name, ...(options.parallelism ? { parallelism: options.parallelism } : {}) },
      feedback: { maxRounds: options.maxRounds },
    });
    return new FeedbackStream<T>(this.builder, id);
  }

  /** A bounded stream from a built-in source (`FileSource.lines(...)`) or a user `SourceFunction`. */
  fromSource<T>(source: SourceDescriptor<T> | SourceFunction<T>, options: OperatorOptions = {}): DataStream<T> {
    const id = isSourceDescriptor(source)
      ? this.builder.add({ kind: "source", inputs: [], fn: undefined, options, source: source.spec })
      : this.builder.add({ kind: "source", inputs: [], fn: source, options, source: { kind: "function" } });
    return new DataStream<T>(this.builder, id);
  }
}
