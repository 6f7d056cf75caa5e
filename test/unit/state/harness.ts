/**
 * Drives a keyed operator as the stage runner does (watermark before each record, each record in
 * its own backend record, +Infinity at the end of a bounded input) and records what it emits;
 * plus seeded event-time data with out-of-order and late records.
 */
import { pino } from "pino";
import type { RecordContext } from "../../../core/api/context.js";
import type { KeyedSpec, LogicalNode } from "../../../core/plan/logical.js";
import { encodeKey, keyGroupOf } from "../../../core/plan/key-groups.js";
import type { StateBackend } from "../../../activities/state/backend.js";
import type { KeyedOperator, KeyedOutput } from "../../../activities/state/keyed-operator.js";
import type { RefRecord } from "./reference.js";

/** Key groups the tests hash keys into. */
export const KEY_GROUPS = 128;

/** A record context for tests. */
export const RECORD_CONTEXT: RecordContext = {
  operatorId: "op",
  jobId: "job",
  params: {},
  attempt: 1,
  logger: pino({ level: "silent" }),
  service: (name) => Promise.reject(new Error(`no service "${name}" in the state tests`)),
};

/** One emitted value: to the main output (tag null) or a side output. */
export interface Emitted {
  value: unknown;
  timestamp: number | undefined;
  tag: string | null;
}

/** A `KeyedOutput` that appends to `into`. */
export function collect(into: Emitted[]): KeyedOutput {
  return {
    emit: (value, timestamp) => into.push({ value, timestamp, tag: null }),
    side: (tag, value) => into.push({ value, timestamp: undefined, tag }),
  };
}

/** A keyed plan node as the builder makes it. */
export function keyedNode(keyed: KeyedSpec, id = "op"): LogicalNode {
  return {
    id,
    name: id,
    kind: "keyed",
    parallelism: null,
    inputs: [],
    form: "lambda",
    fnHash: "",
    retry: { maxAttempts: 1, initialIntervalMs: 0, backoffCoefficient: 1, maxIntervalMs: 0 },
    timeoutMs: 0,
    keyed,
  };
}

/**
 * Feeds `records[from, to)` to `op`: `advanceWatermark(watermarks[i])` then the record, each in a
 * backend record; with `end`, `advanceWatermark(+Infinity)` after the last.
 */
export async function drive(
  op: KeyedOperator,
  backend: StateBackend,
  records: ReadonlyArray<RefRecord>,
  watermarks: readonly number[],
  options: { from?: number; to?: number; end?: boolean; out?: Emitted[] } = {},
): Promise<Emitted[]> {
  const emitted = options.out ?? [];
  const out = collect(emitted);
  for (let i = options.from ?? 0; i < (options.to ?? records.length); i++) {
    const r = records[i]!;
    await op.advanceWatermark(watermarks[i]!, RECORD_CONTEXT, out);
    backend.beginRecord();
    await op.element({ key: r.key, keyGroup: keyGroupOf(r.key, KEY_GROUPS), value: r.value, timestamp: r.timestamp, side: r.side ?? 0 }, RECORD_CONTEXT, out);
    backend.commitRecord();
  }
  if (options.end ?? true) await op.advanceWatermark(Infinity, RECORD_CONTEXT, out);
  return emitted;
}

/** A seeded PRNG (mulberry32): the same data on every run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generated event: which key, a value, when. */
export interface TestEvent {
  k: string;
  n: number;
  ts: number;
  /** `n` as text: reductions concatenate it, so a wrong order shows. */
  s: string;
}

/**
 * `count` events over `keys` keys, time advancing ~`step` ms per event, most jittered by up to
 * `jitter` ms (out of order within the bound) and a `lateShare` of them `lag` ms behind (late).
 */
export function generateEvents(
  seed: number,
  count: number,
  options: { keys?: number; step?: number; jitter?: number; lateShare?: number; lag?: number; start?: number } = {},
): Array<RefRecord<TestEvent>> {
  const { keys = 7, step = 10, jitter = 40, lateShare = 0.05, lag = 400, start = -2_000 } = options;
  const rnd = random(seed);
  const out: Array<RefRecord<TestEvent>> = [];
  for (let i = 0; i < count; i++) {
    const k = `k${Math.floor(rnd() * keys)}`;
    let ts = start + i * step - Math.floor(rnd() * jitter);
    if (rnd() < lateShare) ts -= Math.floor(rnd() * lag);
    out.push({ key: encodeKey(k), value: { k, n: i, ts, s: String(i) }, timestamp: ts });
  }
  return out;
}
