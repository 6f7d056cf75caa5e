/**
 * Runs one fused stage over one split or batch: wires the stage's operators into a push chain,
 * retries records per operator policy, sends records that fail for good to the dead letters,
 * writes sink shards, and returns counts plus the records that leave the stage.
 */
import { join } from "node:path";
import { rm } from "node:fs/promises";
import type { Logger } from "pino";
import type { CompiledPipeline } from "../core/api/pipeline.js";
import type { ProcessContext, RecordContext, SinkContext, SourceContext } from "../core/api/context.js";
import type { SinkFunction, SourceFunction } from "../core/api/functions.js";
import { failsJob, isRetriable, NonRetryableError, PayloadBudgetError, SageError, SinkError, SourceError } from "../core/errors.js";
import type { EdgeBatchRef, StageCounts, StageInput, StageOutput } from "../core/plan/job.js";
import { OTHERWISE_TAG, type LogicalNode, type RetryPolicy } from "../core/plan/logical.js";
import { edgeKey, type Stage } from "../core/plan/physical.js";
import { readFileSplit, type FileSplit } from "../connectors/file/source.js";
import { ShardWriter, jobStagingDir, shardFileName } from "../connectors/file/staging.js";
import { readEdgeBatch, writeEdgeBatch } from "../connectors/file/edge-batches.js";
import { decodeBatch, type BatchRecord } from "../connectors/kafka/batch-codec.js";
import type { OutgoingMessage } from "../connectors/kafka/client.js";
import { decodeSourceRecord, encodeSinkValue, positionOf, rawValue } from "../connectors/kafka/records.js";
import { commitUnit, transactionalIdOf, type KafkaSinkHost, type SinkSession } from "../connectors/kafka/sink.js";
import { checkRecordSize, encodeRecord } from "./record-codec.js";
import type { OperatorRegistry } from "./registry.js";

/** What the stage runner needs from its host activity. */
export interface StageHost {
  registry: OperatorRegistry;
  dataDir: string;
  logger: Logger;
  /** Records liveness with the server; throws when the activity was cancelled. */
  heartbeat(details?: unknown): void;
  /** True once the server asked to cancel this activity (checked per record: cheap). */
  cancelled?(): boolean;
  /** Kafka producers of this worker (streaming jobs only). */
  kafka?(): KafkaSinkHost;
}

/** Pushes one record into an operator; returns a promise only when something awaited. */
type Push = (value: unknown) => void | Promise<void>;
/** One call of a user function on one record. */
type Call = (value: unknown, ctx: RecordContext) => unknown;
/** What happens with a call's result; gets the record too, so it needs no closure per record. */
type Then = (result: unknown, value: unknown) => void | Promise<void>;

/** Pushes `items[from..]` through `push`, staying synchronous until a push returns a promise. */
function pushAll(items: readonly unknown[], push: Push, from = 0): void | Promise<void> {
  for (let i = from; i < items.length; i++) {
    const p = push(items[i]);
    if (p) return p.then(() => pushAll(items, push, i + 1));
  }
}

/** The items of what a flat-map function returned; anything but an iterable is that record's error. */
function toArray(node: LogicalNode, out: unknown): unknown[] {
  if (Array.isArray(out)) return out;
  if (out === null || typeof out !== "object" || !(Symbol.iterator in out)) {
    throw new NonRetryableError(`flatMap "${node.name}" must return an iterable (an array), got ${out === null ? "null" : typeof out}`);
  }
  return Array.from(out as Iterable<unknown>);
}

function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxIntervalMs, policy.initialIntervalMs * policy.backoffCoefficient ** (attempt - 1));
}

function safeJson(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value) ?? "null") as unknown;
  } catch {
    return String(value);
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One execution of one stage on one unit of work. */
class StageRun {
  readonly counts: StageCounts = {};
  readonly outputs: Record<string, unknown[]> = {};
  /** Bounded jobs: JSON lines per outgoing edge, written to an edge file at the end of the unit. */
  private readonly edgeLines: Record<string, string[]> = {};
  private outputBytes = 0;
  private readonly staging: string;
  private readonly deadLetters: ShardWriter;
  private deadCount = 0;
  private readonly writers: ShardWriter[] = [];
  private readonly finishers: Array<() => Promise<void>> = [];
  /** Flushes of the `mapBatch` operators' buffers, by operator id. */
  private readonly batchFlushes = new Map<string, () => Promise<void>>();
  private readonly consumers = new Map<string, Push[]>();
  private readonly nodes: Map<string, LogicalNode>;
  private sinceHeartbeat = 0;
  /** Streaming: what the unit writes to Kafka (sink outputs, dead letters) in one transaction, with the slice each came from. */
  private readonly kafkaOut: Array<{ topic: string; message: OutgoingMessage; slice: number }> = [];
  /** Streaming: the source record now travelling through the chain (its key, headers, timestamp pass through) ... */
  private current: BatchRecord | null = null;
  /** ... and the index of its slice (-1 outside a source stage). */
  private currentSlice = -1;

  constructor(
    private readonly input: StageInput,
    /** Streaming: the records of each slice, encoded by the shim. */
    private readonly streamRecords: Uint8Array[],
    private readonly compiled: CompiledPipeline,
    private readonly stage: Stage,
    private readonly host: StageHost,
    private readonly logger: Logger,
  ) {
    this.nodes = new Map(compiled.plan.nodes.map((n) => [n.id, n] as const));
    this.staging = jobStagingDir(host.dataDir, input.pipeline, input.jobId);
    this.deadLetters = new ShardWriter(join(this.staging, "_dead-letters", shardFileName(input.shard)));
    for (const op of stage.operators) this.counts[op] = { in: 0, out: 0, dead: 0 };
  }

  /** Topics this streaming stage can write: its Kafka sinks' and the dead-letter topic. */
  outputTopics(): string[] {
    const topics = new Set<string>();
    for (const id of this.stage.operators) {
      const sink = this.node(id).sink;
      if (sink?.kind === "kafka") topics.add(sink.topic);
    }
    if (this.input.stream) topics.add(this.input.stream.deadLetterTopic);
    return [...topics];
  }

  private node(id: string): LogicalNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`plan has no operator "${id}"`);
    return n;
  }

  private recordContext(node: LogicalNode, attempt: number): RecordContext {
    return { operatorId: node.id, jobId: this.input.jobId, params: this.input.params, attempt, logger: this.logger };
  }

  private tick(): void {
    if (++this.sinceHeartbeat >= 1000 || this.host.cancelled?.()) {
      this.sinceHeartbeat = 0;
      this.host.heartbeat();
    }
  }

  /**
   * Calls `call` for one record and hands its result to `then`. The first try runs synchronously
   * when the user function is synchronous (the common case: no promise per record); a failure moves
   * to `retry`, which follows the operator's policy and dead-letters the record when it gives up.
   * `call` and `then` take the record as an argument, so an operator builds them once, not per record.
   */
  private invoke(node: LogicalNode, ctx: RecordContext, value: unknown, call: Call, then: Then): void | Promise<void> {
    let result: unknown;
    try {
      result = call(value, ctx);
    } catch (err) {
      return this.retry(node, value, call, then, err);
    }
    if (result instanceof Promise) {
      return withTimeout(result, node.timeoutMs, `operator "${node.name}"`).then(
        (r) => then(r, value),
        (err: unknown) => this.retry(node, value, call, then, err),
      );
    }
    return then(result, value);
  }

  private async retry(node: LogicalNode, value: unknown, call: Call, then: Then, first: unknown): Promise<void> {
    let err = first;
    for (let attempt = 1; ; attempt++) {
      if (failsJob(err)) throw err;
      if (!isRetriable(err) || attempt >= node.retry.maxAttempts) {
        await this.deadLetter(node, value, err, attempt);
        return;
      }
      await new Promise((r) => setTimeout(r, backoffMs(node.retry, attempt)));
      this.host.heartbeat();
      let result: unknown;
      try {
        result = call(value, this.recordContext(node, attempt + 1));
        if (result instanceof Promise) result = await withTimeout(result, node.timeoutMs, `operator "${node.name}"`);
      } catch (e) {
        err = e;
        continue;
      }
      return then(result, value);
    }
  }

  /** Writes one dead letter: operator, error, attempts and the record itself. */
  async deadLetter(node: LogicalNode, record: unknown, err: unknown, attempts: number): Promise<void> {
    this.counts[node.id]!.dead++;
    this.deadCount++;
    const e = err instanceof Error ? err : new Error(String(err));
    const entry = {
      pipeline: this.input.pipeline,
      jobId: this.input.jobId,
      operator: node.id,
      operatorName: node.name,
      shard: this.input.shard,
      attempts,
      error: { name: e.name, message: e.message, ...(e instanceof SageError ? { code: e.code } : {}) },
      record: safeJson(record),
    };
    this.logger.warn({ operator: node.id, attempts, error: e.message }, "record sent to dead letters");
    const stream = this.input.stream;
    if (stream) {
      const source = this.current;
      const slice = stream.slices[this.currentSlice];
      this.kafkaOut.push({
        slice: this.currentSlice,
        topic: stream.deadLetterTopic,
        message: {
          key: source?.key === undefined || source.key === null ? null : source.keyBase64 ? Buffer.from(source.key, "base64") : source.key,
          value: record instanceof Buffer ? record : JSON.stringify(entry.record),
          headers: {
            "sage-pipeline": this.input.pipeline,
            "sage-job": this.input.jobId,
            "sage-operator": node.id,
            "sage-attempts": String(attempts),
            "sage-error": `${e.name}: ${e.message}`.slice(0, 2000),
            ...(source && slice ? { "sage-source": positionOf(slice.topic, slice.partition, source.offset) } : {}),
          },
        },
      });
      return;
    }
    await this.deadLetters.writeLine(JSON.stringify(entry));
  }

  private emitter(node: LogicalNode, tag: string | null): Push {
    const list = this.consumers.get(`${node.id}#${tag ?? ""}`) ?? [];
    const counts = this.counts[node.id]!;
    if (list.length === 1) {
      const only = list[0]!;
      return (v) => {
        counts.out++;
        return only(v);
      };
    }
    const fanOut =
      (v: unknown): Push =>
      (consumer) =>
        (consumer as Push)(v);
    return (v) => {
      counts.out++;
      return pushAll(list, fanOut(v));
    };
  }

  private consume(from: string, tag: string | null, push: Push): void {
    const key = `${from}#${tag ?? ""}`;
    const list = this.consumers.get(key) ?? [];
    list.push(push);
    this.consumers.set(key, list);
  }

  /**
   * Wires the stage: edges leaving the stage first, then operators from last to first. Returns the
   * entry of each way into the stage: its source, or each incoming edge (by edge key).
   */
  async wire(): Promise<Map<string, Push>> {
    const budget = this.input.runtime.maxBatchBytes;
    for (const edge of this.compiled.plan.edges.filter((e) => e.fromStage === this.stage.id)) {
      const from = this.node(edge.fromOperator);
      const producer = from.name;
      // Streaming jobs send records inline (they already travel through history); bounded jobs by edge file.
      const bucket: unknown[] = this.input.stream ? (this.outputs[edgeKey(edge)] ??= []) : (this.edgeLines[edgeKey(edge)] ??= []);
      const loop = edge.feedback ? this.node(edge.toOperator) : null;
      const maxRounds = loop?.feedback?.maxRounds ?? 0;
      const round = loop ? (this.input.rounds?.[loop.id] ?? 0) : 0;
      this.consume(edge.fromOperator, edge.tag, (v) => {
        if (loop && round + 1 > maxRounds) {
          return this.deadLetter(
            from,
            v,
            new NonRetryableError(`feedback "${loop.name}": the record is still looping after ${maxRounds} round(s), its bound`),
            1,
          );
        }
        const json = encodeRecord(v, producer);
        checkRecordSize(json, producer, budget);
        this.outputBytes += json.length;
        if (this.outputBytes > budget) {
          throw new PayloadBudgetError(
            `stage "${this.stage.name}" emitted more than ${budget} bytes toward stage ${edge.toStage} for shard ${this.input.shard}; ` +
              `lower execution.split-bytes or raise execution.max-batch-bytes`,
          );
        }
        bucket.push(this.input.stream ? v : json);
      });
    }
    const pushes = new Map<string, Push[]>();
    for (const id of [...this.stage.operators].reverse()) {
      const node = this.node(id);
      const own = await this.operatorPush(node);
      pushes.set(id, own);
      node.inputs.forEach((input, index) => {
        if (!input.feedback && this.stage.operators.includes(input.from)) this.consume(input.from, input.tag, own[index] ?? own[0]!);
      });
    }
    const entries = new Map<string, Push>();
    if (this.stage.source) entries.set("", pushes.get(this.stage.operators[0]!)![0]!);
    for (const edge of this.compiled.plan.edges.filter((e) => e.toStage === this.stage.id)) {
      const own = pushes.get(edge.toOperator)!;
      entries.set(edgeKey(edge), own[edge.toInput ?? 0] ?? own[0]!);
    }
    return entries;
  }

  /** The push of each input of `node` (one for single-input operators). */
  private async operatorPush(node: LogicalNode): Promise<Push[]> {
    const one = await this.singlePush(node);
    if (one) return [one];
    return this.coPushes(node);
  }

  /** Pushes of a connected-streams operator: input 0 calls `map1`/`flatMap1`, input 1 `map2`/`flatMap2`. */
  private async coPushes(node: LogicalNode): Promise<Push[]> {
    const fn = await this.host.registry.function<Record<string, (v: unknown, c: RecordContext) => unknown>>(this.compiled, node);
    const counts = this.counts[node.id]!;
    const ctx = this.recordContext(node, 1);
    const emit = this.emitter(node, null);
    const flat = node.kind === "coFlatMap";
    return [1, 2].map((i): Push => {
      const method = `${flat ? "flatMap" : "map"}${i}`;
      const call = (v: unknown, c: RecordContext): unknown => {
        const out = fn[method]!.call(fn, v, c);
        if (!flat) return out;
        return out instanceof Promise ? out.then((x) => toArray(node, x)) : toArray(node, out);
      };
      const then: Then = flat ? (items) => pushAll(items as unknown[], emit) : emit;
      return (v) => {
        counts.in++;
        this.tick();
        return this.invoke(node, ctx, v, call, then);
      };
    });
  }

  private async singlePush(node: LogicalNode): Promise<Push | null> {
    const fn = await this.host.registry.function<unknown>(this.compiled, node);
    const counts = this.counts[node.id]!;
    const ctx = this.recordContext(node, 1);
    /** The user's function as `(value, ctx) => result`, whether given as a lambda or an object. */
    const method = <C>(name: string): ((v: unknown, c: C) => unknown) =>
      typeof fn === "function" ? (fn as (v: unknown, c: C) => unknown) : (v, c) => (fn as Record<string, (v: unknown, c: C) => unknown>)[name]!(v, c);
    switch (node.kind) {
      case "source":
        return this.emitter(node, null);
      case "union":
      case "broadcast":
      case "feedback": {
        const emit = this.emitter(node, null);
        return (v) => {
          counts.in++;
          return emit(v);
        };
      }
      case "route": {
        const call = method<RecordContext>("route");
        const { labels, otherwise } = node.route!;
        const known = new Map(labels.map((l) => [l, this.emitter(node, l)] as const));
        const fallback = otherwise ? this.emitter(node, OTHERWISE_TAG) : null;
        const send: Then = (label, v) => {
          const target = typeof label === "string" ? known.get(label) : undefined;
          if (target) return target(v);
          if (fallback) return fallback(v);
          return this.deadLetter(
            node,
            v,
            new NonRetryableError(`router "${node.name}": no branch for label ${JSON.stringify(label)} (branches: ${labels.join(", ")})`),
            1,
          );
        };
        return (v) => {
          counts.in++;
          this.tick();
          return this.invoke(node, ctx, v, call, send);
        };
      }
      case "coMap":
      case "coFlatMap":
        return null;
      case "mapBatch":
        return this.batchPush(node, fn);
      case "map": {
        const call = method<RecordContext>("map");
        const emit = this.emitter(node, null);
        return (v) => {
          counts.in++;
          this.tick();
          return this.invoke(node, ctx, v, call, emit);
        };
      }
      case "filter": {
        const call = method<RecordContext>("filter");
        const emit = this.emitter(node, null);
        const then: Then = (keep, v) => (keep ? emit(v) : undefined);
        return (v) => {
          counts.in++;
          this.tick();
          return this.invoke(node, ctx, v, call, then);
        };
      }
      case "flatMap": {
        const call = method<RecordContext>("flatMap");
        const emit = this.emitter(node, null);
        const items: Call = (v, c) => {
          const out = call(v, c);
          return out instanceof Promise ? out.then((x) => toArray(node, x)) : toArray(node, out);
        };
        const then: Then = (list) => pushAll(list as unknown[], emit);
        return (v) => {
          counts.in++;
          this.tick();
          return this.invoke(node, ctx, v, items, then);
        };
      }
      case "process": {
        const call = method<ProcessContext<unknown>>("process");
        const emits = new Map<string | null, Push>([[null, this.emitter(node, null)]]);
        const emitTo = (tag: string | null): Push => {
          let e = emits.get(tag);
          if (!e) emits.set(tag, (e = this.emitter(node, tag)));
          return e;
        };
        const forward: Push = (pair) => emitTo((pair as [string | null, unknown])[0])((pair as [string | null, unknown])[1]);
        // Emissions are buffered until the call succeeds, so a retried record never emits twice.
        const processed: Call = (v, c) => {
          const buffered: Array<[string | null, unknown]> = [];
          const pctx: ProcessContext<unknown> = { ...c, emit: (x) => void buffered.push([null, x]), output: (tag, x) => void buffered.push([tag.id, x]) };
          const done = call(v, pctx);
          return done instanceof Promise ? done.then(() => buffered) : buffered;
        };
        const then: Then = (pairs) => pushAll(pairs as unknown[], forward);
        return (v) => {
          counts.in++;
          this.tick();
          return this.invoke(node, ctx, v, processed, then);
        };
      }
      case "sink":
        return this.sinkPush(node, fn, ctx);
    }
  }

  /**
   * A `mapBatch` operator buffers its input and calls the function once per `batchSize` records and
   * once more for the rest when the stage's input ends (`flushBatches`, in topological order).
   */
  private batchPush(node: LogicalNode, fn: unknown): Push {
    const counts = this.counts[node.id]!;
    const call = (values: unknown[], c: RecordContext): unknown =>
      typeof fn === "function"
        ? (fn as (v: unknown[], c: RecordContext) => unknown)(values, c)
        : (fn as { mapBatch(v: unknown[], c: RecordContext): unknown }).mapBatch(values, c);
    const emit = this.emitter(node, null);
    const size = node.batchSize ?? 64;
    let buffer: unknown[] = [];
    const flush = async (): Promise<void> => {
      const items = buffer;
      buffer = [];
      if (items.length > 0) await this.runBatch(node, items, call, emit);
    };
    this.batchFlushes.set(node.id, flush);
    return (v) => {
      counts.in++;
      this.tick();
      buffer.push(v);
      if (buffer.length >= size) return flush();
    };
  }

  /**
   * One call of a `mapBatch` function with the operator's retry policy. When the batch fails for good
   * (a non-retryable error, or retries used up), each record is tried alone, so only the records
   * that fail by themselves go to the dead letters.
   */
  private async runBatch(node: LogicalNode, items: unknown[], call: (values: unknown[], c: RecordContext) => unknown, emit: Push): Promise<void> {
    let err: unknown;
    let attempt = 0;
    let results: unknown[] | null = null;
    while (results === null && attempt < node.retry.maxAttempts) {
      attempt++;
      if (attempt > 1) {
        await new Promise((r) => setTimeout(r, backoffMs(node.retry, attempt - 1)));
        this.host.heartbeat();
      }
      try {
        const out = await withTimeout(Promise.resolve(call(items, this.recordContext(node, attempt))), node.timeoutMs, `operator "${node.name}"`);
        if (!Array.isArray(out) || out.length !== items.length) {
          throw new NonRetryableError(
            `mapBatch "${node.name}" must return an array of ${items.length} result(s), got ${Array.isArray(out) ? `${out.length}` : typeof out}`,
          );
        }
        results = out;
      } catch (e) {
        if (failsJob(e)) throw e;
        err = e;
        if (!isRetriable(e)) break;
      }
    }
    if (results) return pushAll(results, emit);
    if (items.length > 1) {
      for (const item of items) await this.runBatch(node, [item], call, emit);
      return;
    }
    await this.deadLetter(node, items[0], err, attempt);
  }

  /** Runs the `mapBatch` buffers out, upstream operators first (their output fills the next buffer). */
  async flushBatches(): Promise<void> {
    for (const id of this.stage.operators) await this.batchFlushes.get(id)?.();
  }

  private sinkPush(node: LogicalNode, fn: unknown, ctx: RecordContext): Push {
    const counts = this.counts[node.id]!;
    const spec = node.sink!;
    const producer = this.node(node.inputs[0]!.from).name;
    if (spec.kind === "file") {
      const writer = new ShardWriter(join(this.staging, node.id, shardFileName(this.input.shard)));
      this.writers.push(writer);
      this.finishers.push(() => writer.finish());
      return (v) => {
        counts.in++;
        counts.out++;
        return writer.writeLine(encodeRecord(v, producer));
      };
    }
    if (spec.kind === "kafka") return this.kafkaSinkPush(node, fn as ((v: unknown) => string | null) | undefined, ctx, producer);
    if (spec.kind === "print") {
      return (v) => {
        counts.in++;
        process.stdout.write(`${spec.prefix}${encodeRecord(v, producer)}\n`);
        counts.out++;
      };
    }
    const sink = fn as SinkFunction<unknown> | ((v: unknown, c: SinkContext) => unknown);
    const invoke = typeof sink === "function" ? sink : (v: unknown, c: SinkContext) => sink.invoke(v, c);
    const sinkCtx = (c: RecordContext): SinkContext => ({ ...c, shard: this.input.shard });
    const first = sinkCtx(ctx);
    if (typeof sink !== "function" && sink.finish) {
      this.finishers.push(async () => {
        await sink.finish?.(first);
      });
    }
    const written = () => {
      counts.out++;
    };
    const call: Call = (v, c) => invoke(v, c === first ? first : sinkCtx(c));
    return (v) => {
      counts.in++;
      this.tick();
      return this.invoke(node, first, v, call, written);
    };
  }

  /** Buffers Kafka sink outputs for the batch's transaction; the key comes from the key function or the source record. */
  private kafkaSinkPush(node: LogicalNode, keyFn: ((v: unknown) => string | null) | undefined, ctx: RecordContext, producer: string): Push {
    const spec = node.sink!;
    if (spec.kind !== "kafka") throw new Error(`sink "${node.name}" is not a Kafka sink`);
    if (!this.input.stream) throw new SinkError(`Kafka sink "${node.name}" needs a streaming job (a Kafka source)`);
    const counts = this.counts[node.id]!;
    const write = (v: unknown, key: string | null): void => {
      const source = this.current;
      const sourceKey = source?.key === undefined || source.key === null ? null : source.keyBase64 ? Buffer.from(source.key, "base64") : source.key;
      this.kafkaOut.push({
        slice: this.currentSlice,
        topic: spec.topic,
        message: {
          key: spec.keyed ? key : sourceKey,
          value: encodeSinkValue(spec, v, node.name, (x) => encodeRecord(x, producer)),
          ...(source && Object.keys(source.headers).length > 0 ? { headers: source.headers } : {}),
          ...(source ? { timestamp: source.timestamp } : {}),
        },
      });
      counts.out++;
    };
    if (!spec.keyed || !keyFn) {
      return (v) => {
        counts.in++;
        write(v, null);
      };
    }
    return (v) => {
      counts.in++;
      return this.invoke(
        node,
        ctx,
        v,
        () => keyFn(v),
        (key) => write(v, key === null || key === undefined ? null : String(key)),
      );
    };
  }

  /** Streaming: decodes each slice and pushes every record not accepted before into the chain. */
  private async driveStream(node: LogicalNode, entry: Push): Promise<void> {
    const spec = node.source!;
    const stream = this.input.stream!;
    if (spec.kind !== "kafka" || this.streamRecords.length !== stream.slices.length) {
      throw new NonRetryableError(
        `stage ${this.stage.id} got ${this.streamRecords.length} record payload(s) for ${stream.slices.length} stream slice(s), or does not start with a Kafka source`,
      );
    }
    const counts = this.counts[node.id]!;
    for (const [i, slice] of stream.slices.entries()) {
      this.currentSlice = i;
      for (const rec of decodeBatch(this.streamRecords[i]!)) {
        if (rec.offset < slice.skipBelow) continue;
        this.current = rec;
        counts.in++;
        let value: unknown;
        try {
          value = decodeSourceRecord(spec, slice.topic, slice.partition, rec);
        } catch (err) {
          await this.deadLetter(node, rawValue(rec), err, 1);
          continue;
        }
        const p = entry(value);
        if (p) await p;
        this.tick();
      }
    }
    this.current = null;
    this.currentSlice = -1;
  }

  /** Streaming: commits what the unit produced for Kafka with the markers, skipping what an earlier attempt committed. */
  async commitStream(session: SinkSession): Promise<void> {
    await commitUnit(session, this.input.stream!.slices, this.kafkaOut, this.stage.source, this.logger);
  }

  /** Reads the split (source stages) or the batch (other stages) into the chain. */
  async drive(entries: Map<string, Push>): Promise<void> {
    if (!this.stage.source) {
      // Plans before graphs had one way into a stage and did not name the edge a batch came on.
      const entry = this.input.edge !== undefined ? entries.get(this.input.edge) : entries.size === 1 ? [...entries.values()][0] : undefined;
      if (!entry) throw new NonRetryableError(`stage ${this.stage.id} has no incoming edge "${String(this.input.edge)}"`);
      const records = this.input.batchRef ? await readEdgeBatch(this.staging, this.input.batchRef) : (this.input.batch ?? []);
      await pushAll(records, entry);
      return;
    }
    const entry = entries.get("")!;
    const node = this.node(this.stage.operators[0]!);
    if (this.input.stream) return this.driveStream(node, entry);
    const counts = this.counts[node.id]!;
    const split = this.input.split!.descriptor;
    const spec = node.source!;
    if (spec.kind === "file") {
      for await (const chunk of readFileSplit(split as unknown as FileSplit, spec.format)) {
        for (const rec of chunk) {
          counts.in++;
          const p = rec.ok ? entry(rec.value) : this.deadLetter(node, rec.raw, new NonRetryableError(rec.reason), 1);
          if (p) await p;
        }
        this.host.heartbeat();
      }
      return;
    }
    if (spec.kind === "collection") {
      const items = (await this.host.registry.function<unknown[]>(this.compiled, node)) ?? [];
      const [from, to] = split as [number, number];
      for (let i = from; i < to; i++) {
        counts.in++;
        const p = entry(items[i]);
        if (p) await p;
        this.tick();
      }
      return;
    }
    const source = await this.host.registry.function<SourceFunction<unknown>>(this.compiled, node);
    const records: unknown = source.read(split, this.sourceContext(node));
    if (typeof records !== "object" || records === null || !(Symbol.iterator in records || Symbol.asyncIterator in records)) {
      throw new SourceError(
        `source "${node.name}": read() must return an iterable or async iterable of records, got ${records === null ? "null" : typeof records}`,
      );
    }
    for await (const v of records as AsyncIterable<unknown> | Iterable<unknown>) {
      counts.in++;
      const p = entry(v);
      if (p) await p;
      this.tick();
    }
  }

  sourceContext(node: LogicalNode): SourceContext {
    return { params: this.input.params, parallelism: node.parallelism ?? this.compiled.plan.parallelism, logger: this.logger };
  }

  async finish(): Promise<void> {
    await this.flushBatches();
    for (const f of this.finishers) await f();
    if (this.input.stream) return;
    if (this.deadCount > 0) await this.deadLetters.finish();
  }

  /** Writes each edge's records to its edge file; their references are what history carries. */
  async sendEdges(): Promise<Record<string, EdgeBatchRef>> {
    const refs: Record<string, EdgeBatchRef> = {};
    for (const [key, lines] of Object.entries(this.edgeLines)) {
      if (lines.length > 0) refs[key] = await writeEdgeBatch(this.staging, `${this.input.shard}.${key}`, lines);
    }
    return refs;
  }

  async discard(): Promise<void> {
    for (const w of this.writers) await w.discard();
    await this.deadLetters.discard();
  }

  /** Removes what an earlier attempt of this shard left in the dead letters. */
  async clearEarlierAttempt(): Promise<void> {
    await rm(join(this.staging, "_dead-letters", shardFileName(this.input.shard)), { force: true });
  }
}

/** Runs one stage activity. */
export async function runStage(input: StageInput, host: StageHost, logger: Logger, records: Uint8Array[] = []): Promise<StageOutput> {
  const compiled = host.registry.resolve(input);
  const stage = compiled.plan.stages.find((s) => s.id === input.stage);
  if (!stage) throw new NonRetryableError(`plan ${compiled.plan.hash.slice(0, 12)} has no stage "${input.stage}"`);
  const run = new StageRun(input, records, compiled, stage, host, logger);
  if (input.stream) {
    if (!host.kafka) throw new SinkError(`stage ${stage.name} runs a streaming job but this worker has no Kafka connection`);
    // The whole unit holds its transactional id: fenced first, then run, then committed once.
    await host.kafka().withSession(transactionalIdOf(input.pipeline, input.jobId, stage.id, input.shard), run.outputTopics(), async (session) => {
      const entries = await run.wire();
      await run.drive(entries);
      await run.finish();
      await run.commitStream(session);
    });
    return { counts: run.counts, outputs: run.outputs };
  }
  await run.clearEarlierAttempt();
  const entries = await run.wire();
  let refs: Record<string, EdgeBatchRef>;
  try {
    await run.drive(entries);
    await run.finish();
    refs = await run.sendEdges();
  } catch (err) {
    await run.discard();
    throw err;
  }
  return { counts: run.counts, outputs: run.outputs, ...(Object.keys(refs).length > 0 ? { refs } : {}) };
}
