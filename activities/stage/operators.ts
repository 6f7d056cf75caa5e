/**
 * What each operator kind does with a record it receives: the user function through the record
 * invoker, then its result to the operator's outputs. Built once per operator and stage run; per
 * record there is no closure and, for synchronous functions, no promise.
 */
import type { ProcessContext, RecordContext } from "../../core/api/context.js";
import { NonRetryableError } from "../../core/errors.js";
import { OTHERWISE_TAG, type LogicalNode } from "../../core/plan/logical.js";
import type { DeadLetters } from "./dead-letters.js";
import type { Call, RecordInvoker, Then } from "./invoker.js";
import { pushAll, type Push } from "./push.js";
import type { Sinks } from "./sinks.js";
import type { RecordInFlight, StageUnit } from "./unit.js";
import { keyByPush, timestampsPush, type KeyedRun } from "./keyed.js";
import type { TimestampAssigner } from "../../core/api/time.js";

/** What an operator's push is built from; the operator chain provides it. */
export interface OperatorWiring {
  readonly unit: StageUnit;
  readonly invoker: RecordInvoker;
  readonly deadLetters: DeadLetters;
  readonly sinks: Sinks;
  /** The output of `node` to what reads its `tag` (null: the main output). */
  output(node: LogicalNode, tag: string | null): Push;
  /** Registers the flush of a `mapBatch` operator's buffer, run when the stage's input ends. */
  onInputEnd(node: LogicalNode, flush: () => Promise<void>): void;
  /** The keyed operator `node` over this unit's key groups, its state opened. */
  keyedRun(node: LogicalNode, fn: unknown): Promise<KeyedRun>;
}

/** The user's function as `(value, ctx) => result`, whether given as a lambda or as an object with `name`. */
function method<C>(fn: unknown, name: string): (v: unknown, c: C) => unknown {
  return typeof fn === "function" ? (fn as (v: unknown, c: C) => unknown) : (v, c) => (fn as Record<string, (v: unknown, c: C) => unknown>)[name]!(v, c);
}

/** The items of what a flat-map function returned; anything but an iterable is that record's error. */
function toArray(node: LogicalNode, out: unknown): unknown[] {
  if (Array.isArray(out)) return out;
  if (out === null || typeof out !== "object" || !(Symbol.iterator in out)) {
    throw new NonRetryableError(`flatMap "${node.name}" must return an iterable (an array), got ${out === null ? "null" : typeof out}`);
  }
  return Array.from(out as Iterable<unknown>);
}

/** `call` whose result (or promised result) becomes an array of items, for the flat-map kinds. */
function flattened(node: LogicalNode, call: Call): Call {
  return (v, c) => {
    const out = call(v, c);
    return out instanceof Promise ? out.then((x) => toArray(node, x)) : toArray(node, out);
  };
}

/** The push of each input of `node` (one, except for connected streams: one per input). */
export async function operatorPushes(w: OperatorWiring, node: LogicalNode): Promise<Push[]> {
  const fn = await w.unit.host.registry.function<unknown>(w.unit.compiled, node);
  const ctx = w.unit.recordContext(node, 1);
  const invoker = w.invoker;
  const invoked = (call: Call, then: Then): Push => {
    return (v) => invoker.invoke(node, ctx, v, call, then);
  };
  switch (node.kind) {
    case "source":
    case "union":
    case "broadcast":
    case "feedback":
      return [w.output(node, null)];
    case "route":
      return [invoked(method(fn, "route"), routeThen(w, node))];
    case "coMap":
    case "coFlatMap":
      return coPushes(w, node, fn as Record<string, Call>, invoked);
    case "mapBatch":
      return [batchPush(w, node, fn)];
    case "map":
      return [invoked(method(fn, "map"), w.output(node, null))];
    case "filter": {
      const emit = w.output(node, null);
      return [invoked(method(fn, "filter"), (keep, v) => (keep ? emit(v) : undefined))];
    }
    case "flatMap": {
      const emit = w.output(node, null);
      return [invoked(flattened(node, method(fn, "flatMap")), (items) => pushAll(items as unknown[], emit))];
    }
    case "process":
      return [processPush(w, node, method<ProcessContext<unknown>>(fn, "process"), invoked)];
    case "sink":
      return [w.sinks.push(node, fn, ctx)];
    case "timestamps":
      return [timestampsPush(w, node, fn as TimestampAssigner<unknown> | undefined)];
    case "keyBy":
      return [keyByPush(w, node, fn as (v: unknown) => unknown)];
    case "keyed": {
      const run = await w.keyedRun(node, fn);
      return node.inputs.map((_, side) => run.push(side));
    }
  }
}

/** A router's result: the output of the branch its label names, the otherwise branch, or a dead letter. */
function routeThen(w: OperatorWiring, node: LogicalNode): Then {
  const { labels, otherwise } = node.route!;
  const known = new Map(labels.map((l) => [l, w.output(node, l)] as const));
  const fallback = otherwise ? w.output(node, OTHERWISE_TAG) : null;
  return (label, v) => {
    const target = typeof label === "string" ? known.get(label) : undefined;
    if (target) return target(v);
    if (fallback) return fallback(v);
    return w.deadLetters.write(
      node,
      v,
      new NonRetryableError(`router "${node.name}": no branch for label ${JSON.stringify(label)} (branches: ${labels.join(", ")})`),
      1,
    );
  };
}

/** Pushes of a connected-streams operator: input 0 calls `map1`/`flatMap1`, input 1 `map2`/`flatMap2`. */
function coPushes(w: OperatorWiring, node: LogicalNode, fn: Record<string, Call>, invoked: (call: Call, then: Then) => Push): Push[] {
  const emit = w.output(node, null);
  const flat = node.kind === "coFlatMap";
  return [1, 2].map((i): Push => {
    const name = `${flat ? "flatMap" : "map"}${i}`;
    const call: Call = (v, c) => fn[name]!.call(fn, v, c);
    return flat ? invoked(flattened(node, call), (items) => pushAll(items as unknown[], emit)) : invoked(call, emit);
  });
}

/**
 * A `process` operator: its emissions are buffered until the call succeeds, so a retried record
 * never emits twice; then each goes to the main output or to the side output its tag names.
 */
function processPush(
  w: OperatorWiring,
  node: LogicalNode,
  call: (v: unknown, c: ProcessContext<unknown>) => unknown,
  invoked: (call: Call, then: Then) => Push,
): Push {
  const emits = new Map<string | null, Push>([[null, w.output(node, null)]]);
  const emitTo = (tag: string | null): Push => {
    let e = emits.get(tag);
    if (!e) emits.set(tag, (e = w.output(node, tag)));
    return e;
  };
  const forward: Push = (pair) => emitTo((pair as [string | null, unknown])[0])((pair as [string | null, unknown])[1]);
  const processed: Call = (v, c) => {
    const buffered: Array<[string | null, unknown]> = [];
    const pctx: ProcessContext<unknown> = { ...c, emit: (x) => void buffered.push([null, x]), output: (tag, x) => void buffered.push([tag.id, x]) };
    const done = call(v, pctx);
    return done instanceof Promise ? done.then(() => buffered) : buffered;
  };
  return invoked(processed, (pairs) => pushAll(pairs as unknown[], forward));
}

/**
 * A `mapBatch` operator buffers its input and calls the function once per `batchSize` records and
 * once more for the rest when the stage's input ends (in the stage's operator order).
 */
function batchPush(w: OperatorWiring, node: LogicalNode, fn: unknown): Push {
  const call = method<RecordContext>(fn, "mapBatch");
  const emit = w.output(node, null);
  const size = node.batchSize ?? 64;
  let buffer: unknown[] = [];
  /** Lineage of a bounded unit: the source position (start, length) of each buffered record. */
  let positions: number[] = [];
  /** A streaming unit: each buffered record's source record in flight and event time. */
  let sources: Array<{ record: RecordInFlight; eventTime: number | undefined }> = [];
  const flush = async (): Promise<void> => {
    const items = buffer;
    const from = positions;
    const of = sources;
    buffer = [];
    positions = [];
    sources = [];
    if (items.length === 0) return;
    const lineage = w.unit.lineage;
    const stream = w.unit.stream;
    // Each result goes out as its own record's: in a streaming unit its key, slice, recount (an
    // output of a committed record is dropped) and lineage, not the record's that filled the batch.
    const here = stream ? { record: stream.inFlight(), eventTime: w.unit.eventTime } : null;
    const own = (i: number): void => {
      if (stream) {
        stream.resumeAt(of[i]!.record);
        w.unit.eventTime = of[i]!.eventTime;
      }
      // A streaming unit's lineage asks its Kafka side; a bounded one's is the record's byte range.
      if (lineage) lineage.resume(stream ? -1 : from[2 * i]!, stream ? -1 : from[2 * i + 1]!);
    };
    try {
      if (!lineage) return await w.invoker.invokeBatch(node, items, call, emit, stream ? own : undefined);
      // The call (and its model calls) is for the whole batch; a bounded call names the records of
      // its batch (all of them: a retried part's records are among them).
      const records = !stream && from.every((p, i) => i % 2 === 1 || p >= 0) ? items.map((_, i) => String(from[2 * i])) : undefined;
      const batchCall: Call = (xs, ctx) => {
        lineage.enterBatch(records);
        return call(xs, ctx);
      };
      await lineage.batchWide(() => w.invoker.invokeBatch(node, items, batchCall, emit, own));
    } finally {
      if (stream && here) {
        stream.resumeAt(here.record);
        w.unit.eventTime = here.eventTime;
      }
    }
  };
  w.onInputEnd(node, flush);
  return (v) => {
    w.unit.tick();
    buffer.push(v);
    if (w.unit.lineage) positions.push(w.unit.lineage.start, w.unit.lineage.length);
    if (w.unit.stream) sources.push({ record: w.unit.stream.inFlight(), eventTime: w.unit.eventTime });
    if (buffer.length >= size) return flush();
  };
}
