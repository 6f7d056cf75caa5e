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
import { LLM_SERVICES } from "./llm.js";
import type { ServiceFactory } from "./services.js";
import { ParamRef } from "./params.js";
import { NAME_CHARS, isName } from "../names.js";

function isSourceDescriptor(value: unknown): value is SourceDescriptor<unknown> {
  return typeof value === "object" && value !== null && "spec" in value;
}

/** Builds the streams of one pipeline. */
export class StreamExecutionEnvironment {
  /** @internal */
  constructor(private readonly builder: GraphBuilder) {}

  /** @internal The services this pipeline registered, by name (not part of the plan or its hash). */
  readonly services = new Map<string, ServiceFactory<unknown>>();

  /** Name of the pipeline being built. */
  get pipeline(): string {
    return this.builder.pipeline;
  }

  /** A job parameter given at submit time (`--param name=value`); the plan holds only the reference. */
  param(name: string, options: { default?: string } = {}): ParamRef {
    if (!isName(name)) throw new PipelineDefinitionError(`parameter name "${name}" must match ${NAME_CHARS}`);
    return new ParamRef(name, options.default);
  }

  /**
   * Registers a service that functions reach with `await ctx.service<T>(name)` (SAGE's
   * `register_service`). `factory` runs once per worker process, on first use (once per stage
   * thread in a stage thread that uses it); what it returns is closed with its `close()` when the
   * worker stops. A service holds per-process state: what workers must share goes in a real store
   * (a vector index folder, Kafka, a database) the factory connects to. Not part of the plan hash.
   */
  registerService<T>(name: string, factory: ServiceFactory<T>): this {
    if (!isName(name)) throw new PipelineDefinitionError(`pipeline "${this.pipeline}": service name "${name}" must match ${NAME_CHARS}`);
    if (name === LLM_SERVICES) throw new PipelineDefinitionError(`pipeline "${this.pipeline}": service name "${LLM_SERVICES}" is the built-in LLM service's`);
    if (typeof factory !== "function") throw new PipelineDefinitionError(`pipeline "${this.pipeline}": service "${name}" needs a factory function`);
    if (this.services.has(name)) throw new PipelineDefinitionError(`pipeline "${this.pipeline}": service "${name}" is registered twice`);
    this.services.set(name, factory);
    return this;
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
