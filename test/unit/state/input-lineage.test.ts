/**
 * Input summaries of keyed outputs: every window's (tumbling, sliding, session, count) result names
 * exactly the records its accumulator saw (count, per-partition range, first 16 in order), also when
 * the state is rebuilt from its changelog halfway; a rolling aggregate names its key's records so far,
 * an interval join each pair's two records; and the header reads back as written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { KeyedSpec } from "../../../core/plan/logical.js";
import type { WindowSpec } from "../../../core/api/windows.js";
import { InMemoryStateBackend } from "../../../activities/state/backend.js";
import { createKeyedOperator, type KeyedFunctions } from "../../../activities/state/create.js";
import { InputLineage } from "../../../activities/state/input-lineage.js";
import type { KeyedOperator, KeyedOutput } from "../../../activities/state/keyed-operator.js";
import { keyGroupOf } from "../../../core/plan/key-groups.js";
import { addInput, emptySummary, formatInputs, INPUT_SAMPLE, parseInputs, type EmittedInputs, type InputSummary } from "../../../core/plan/input-summary.js";
import { generateEvents, KEY_GROUPS, keyedNode, RECORD_CONTEXT, type TestEvent } from "./harness.js";
import { watermarksBefore } from "./reference.js";

const EVENTS = generateEvents(7, 900, { keys: 3 });
const WATERMARKS = watermarksBefore(EVENTS, 50);
/** Record i sits at offset i of partition i % 2 (two source partitions). */
const originOf = (i: number): string => `in:${i % 2}`;

const trail = {
  createAccumulator: () => [] as number[],
  add: (e: TestEvent, acc: number[]) => [...acc, e.n],
  getResult: (acc: number[]) => acc,
  merge: (a: number[], b: number[]) => [...a, ...b],
};

interface Output {
  value: unknown;
  inputs: EmittedInputs | undefined;
}

/** The summary the records `ns` (in arrival order) make. */
function summaryOf(ns: readonly number[]): InputSummary {
  const s = emptySummary();
  for (const n of ns) addInput(s, [originOf(n), n]);
  return s;
}

function window(window: WindowSpec, allowedLatenessMs = 0): KeyedSpec {
  return { op: "window", window, apply: "aggregate", allowedLatenessMs, lateTag: null, withResultFn: false };
}

/** Runs `events[from, to)` through `op` as the runner does, the lineage told each record's position; `sides`: odd records go to input 1. */
async function feed(
  op: KeyedOperator,
  backend: InMemoryStateBackend,
  lineage: InputLineage,
  out: Output[],
  range: { from: number; to: number; end: boolean; sides: boolean },
): Promise<void> {
  const { from, to, end, sides } = range;
  const sink: KeyedOutput = {
    emit: (value, _ts, inputs) => void out.push({ value, inputs }),
    side: (_tag, value, inputs) => void out.push({ value, inputs }),
  };
  for (let i = from; i < to; i++) {
    const r = EVENTS[i]!;
    lineage.current = null;
    await op.advanceWatermark(WATERMARKS[i]!, RECORD_CONTEXT, sink);
    lineage.current = [originOf(r.value.n), r.value.n];
    backend.beginRecord();
    await op.element(
      { key: r.key, keyGroup: keyGroupOf(r.key, KEY_GROUPS), value: r.value, timestamp: r.timestamp, side: sides ? r.value.n % 2 : 0 },
      RECORD_CONTEXT,
      sink,
    );
    backend.commitRecord();
  }
  lineage.current = null;
  if (end) await op.advanceWatermark(Infinity, RECORD_CONTEXT, sink);
}

/** Every output of a keyed operator over EVENTS, the state rebuilt from its changelog after record `restoreAt` (if given). */
async function run(spec: KeyedSpec, fns: KeyedFunctions, restoreAt?: number): Promise<Output[]> {
  const sides = spec.op === "intervalJoin";
  const out: Output[] = [];
  let backend = new InMemoryStateBackend();
  let lineage = new InputLineage(backend);
  let op = createKeyedOperator(keyedNode(spec), fns, backend, () => 0, lineage);
  const cut = restoreAt ?? EVENTS.length;
  await feed(op, backend, lineage, out, { from: 0, to: cut, end: restoreAt === undefined, sides });
  if (restoreAt === undefined) return out;
  const changes = backend.takeChanges();
  backend = new InMemoryStateBackend();
  backend.restore(changes);
  lineage = new InputLineage(backend);
  op = createKeyedOperator(keyedNode(spec), fns, backend, () => 0, lineage);
  await op.advanceWatermark(WATERMARKS[cut - 1]!, RECORD_CONTEXT, { emit: () => undefined, side: () => undefined });
  await feed(op, backend, lineage, out, { from: cut, to: EVENTS.length, end: true, sides });
  return out;
}

const WINDOWS: Array<[string, KeyedSpec]> = [
  ["tumbling with lateness", window({ kind: "tumbling", sizeMs: 600, offsetMs: 0, time: "event" }, 60)],
  ["sliding", window({ kind: "sliding", sizeMs: 900, slideMs: 300, offsetMs: 0, time: "event" })],
  ["session", window({ kind: "session", gapMs: 45, time: "event" })],
  ["count", window({ kind: "count", size: 20, slide: 20 })],
];

for (const [name, spec] of WINDOWS) {
  test(`${name}: each result names exactly the records its accumulator holds, also across a restore from the changelog`, async () => {
    const outputs = await run(spec, { main: trail });
    assert.ok(outputs.length > 10);
    let big = 0;
    for (const { value, inputs } of outputs) {
      const ns = value as number[];
      assert.ok(inputs, "a window's result names its inputs");
      assert.deepEqual(inputs.summary, summaryOf(ns), `inputs of ${JSON.stringify(ns)}`);
      assert.equal(inputs.window === null, name === "count");
      if (ns.length > INPUT_SAMPLE) big++;
    }
    assert.ok(big > 0, "some window holds more records than the sample");
    assert.deepEqual(await run(spec, { main: trail }, 450), outputs);
  });
}

test("a rolling aggregate names its key's records so far; an interval join each pair's two records", async () => {
  const rolling = await run({ op: "aggregate" }, { main: trail });
  assert.equal(rolling.length, EVENTS.length);
  for (const { value, inputs } of rolling) assert.deepEqual(inputs?.summary, summaryOf(value as number[]));
  const pairs = await run(
    { op: "intervalJoin", lowerMs: 0, upperMs: 40 },
    {
      main: (l: TestEvent, r: TestEvent, ctx: { emit(v: unknown): void }) => ctx.emit([l.n, r.n]),
    },
  );
  assert.ok(pairs.length > 0);
  for (const { value, inputs } of pairs) assert.deepEqual(inputs?.summary, summaryOf(value as number[]));
});

test("the sage-inputs header reads back as written", () => {
  const summary = summaryOf(Array.from({ length: 40 }, (_, i) => i * 3));
  const inputs = { operator: "tumbling", key: '"a|b"', window: { start: -10_000, end: 0 }, summary };
  const text = formatInputs(inputs);
  assert.match(text, /^40\|tumbling\|-10000-0\|in\[0\]@0-114:0,6,12,18,24,30,36,42 in\[1\]@3-117:3,9,15,21,27,33,39,45\|"a\|b"$/);
  const back = parseInputs(text)!;
  assert.deepEqual({ ...back, summary: { ...back.summary, s: [...back.summary.s].sort((a, b) => a[1] - b[1]) } }, inputs);
  assert.deepEqual(parseInputs(formatInputs({ operator: "r", key: "1", window: null, summary: emptySummary() })), {
    operator: "r",
    key: "1",
    window: null,
    summary: emptySummary(),
  });
  for (const bad of ["", "x|op||in[0]@1-2:|k", "3|op|zz|in[0]@1-2:|k", "3||||k", "3|op||in0@1-2|k"]) assert.equal(parseInputs(bad), null, bad);
});
