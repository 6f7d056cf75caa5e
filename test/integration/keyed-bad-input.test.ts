/**
 * Bad input at run time in a keyed job, on a real worker: a timestamp that is not a finite number,
 * a key with no stable encoding, a state value JSON cannot carry. Each such record goes to the dead
 * letters with the operator and the reason, its other state changes and emissions are undone, and
 * the job goes on: every good record's results equal a plain reference.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pipeline, { WINDOW_MS, type BadEv, type BadKind, type RunningSum, type WindowCount } from "../fixtures/keyed-bad-pipeline.js";
import { readJsonl, runJob, testConfig } from "../support/harness.js";

const N = 400;

/** Every kind of bad record, and what its dead letter must say: the operator and the reason. */
const EXPECTED: Record<BadKind, { operator: string; message: string; code: string }> = {
  "ts-nan": {
    operator: "timestamps",
    message: 'timestamp assigner "timestamps" returned NaN; an event time must be a finite number of ms since the epoch',
    code: "NON_RETRYABLE",
  },
  "ts-missing": {
    operator: "timestamps",
    message: 'timestamp assigner "timestamps" returned undefined; an event time must be a finite number of ms since the epoch',
    code: "NON_RETRYABLE",
  },
  "key-undefined": { operator: "by-k", message: 'keyBy "by-k": the key is undefined', code: "NON_RETRYABLE" },
  "key-map": {
    operator: "by-k",
    message: 'keyBy "by-k": the key is a Map, which has no stable encoding (use a string, a number or a plain object)',
    code: "NON_RETRYABLE",
  },
  "key-class": {
    operator: "by-k",
    message: 'keyBy "by-k": the key is a Account, which has no stable encoding (use a string, a number or a plain object)',
    code: "NON_RETRYABLE",
  },
  "key-nan": { operator: "by-k", message: 'keyBy "by-k": the key is NaN, which has no stable encoding', code: "NON_RETRYABLE" },
  "key-nested-nan": { operator: "by-k", message: 'keyBy "by-k": the key.score is NaN, which has no stable encoding', code: "NON_RETRYABLE" },
  "state-function": { operator: "sums", message: 'state "sum" cannot hold this value: the value is a function', code: "STATE_VALUE" },
  "state-nan": { operator: "sums", message: 'state "sum" cannot hold this value: the value is NaN', code: "STATE_VALUE" },
  "state-map": {
    operator: "sums",
    message: 'state "sum" cannot hold this value: the value is a Map; state holds only plain objects, arrays, strings, finite numbers, booleans and null',
    code: "STATE_VALUE",
  },
  "state-bigint": { operator: "sums", message: 'state "sum" cannot hold this value: the value is a BigInt (10n)', code: "STATE_VALUE" },
};
const KINDS = Object.keys(EXPECTED) as BadKind[];

/** `n` records over 4 keys, 300 ms apart (in order: none is late); every 11th is bad, cycling through the kinds. */
function badInput(n: number): BadEv[] {
  const t0 = Date.UTC(2026, 0, 1);
  let s = 7;
  const rand = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, (_, id) => {
    const e: BadEv = { id, k: "abcd"[Math.floor(rand() * 4)]!, ts: t0 + id * 300, v: 1 + Math.floor(rand() * 9) };
    return id % 11 === 5 ? { ...e, bad: KINDS[Math.floor(id / 11) % KINDS.length]! } : e;
  });
}

/** What the good records must give: the running sums (bad-state records left out) and the window counts (bad time or key left out). */
function reference(input: readonly BadEv[]): { sums: RunningSum[]; windows: WindowCount[] } {
  const sums: RunningSum[] = [];
  const running = new Map<string, { n: number; sum: number }>();
  const windows = new Map<string, WindowCount>();
  for (const e of input) {
    if (e.bad?.startsWith("ts-") || e.bad?.startsWith("key-")) continue;
    const start = e.ts - (e.ts % WINDOW_MS);
    const w = windows.get(`${e.k}@${start}`) ?? { k: e.k, start, n: 0, sum: 0 };
    windows.set(`${e.k}@${start}`, { ...w, n: w.n + 1, sum: w.sum + e.v });
    if (e.bad !== undefined) continue;
    const r = running.get(e.k) ?? { n: 0, sum: 0 };
    const next = { n: r.n + 1, sum: r.sum + e.v };
    running.set(e.k, next);
    sums.push({ k: e.k, id: e.id, ...next });
  }
  return { sums, windows: [...windows.values()] };
}

/** Rows as sorted JSON strings: the order across keys is not part of the contract. */
const sorted = (rows: readonly unknown[]): string[] => rows.map((r) => JSON.stringify(r)).sort();

interface DeadLetter {
  operator: string;
  operatorName: string;
  attempts: number;
  error: { name: string; message: string; code?: string };
  record: unknown;
  /** The encoded key, for a keyed operator's dead letter. */
  key?: string;
}

/** The input record a dead letter holds (a keyed operator's too, with its encoded key beside it). */
function recordOf(d: DeadLetter): BadEv {
  // A keyed operator's dead letter is the user's record, its key beside it.
  if (d.operator === "sums") assert.equal(d.key, JSON.stringify((d.record as BadEv).k));
  return d.record as BadEv;
}

test("bad timestamps, keys and state values go to the dead letters with operator and reason; every good record's result is right", async () => {
  const input = badInput(N);
  const bad = input.filter((e) => e.bad !== undefined);
  for (const kind of KINDS) assert.ok(bad.filter((e) => e.bad === kind).length >= 2, `the input has ${kind} records`);
  const config = testConfig("keyed-bad", { "execution.parallelism": 2, "execution.split-bytes": 4 * 1024 });
  const file = join(config.dir, "events.jsonl");
  writeFileSync(file, input.map((e) => JSON.stringify(e)).join("\n") + "\n");
  const out = { sums: join(config.dir, "sums.jsonl"), windows: join(config.dir, "windows.jsonl") };
  const { result } = await runJob(pipeline, config, { input: file, ...out });
  assert.equal(result.phase, "done");
  assert.ok(result.splitsTotal >= 4, `the input was read as ${result.splitsTotal} splits`);

  // The good records: every running value, with nothing of a dead-lettered record in it.
  const want = reference(input);
  assert.deepEqual(sorted(readJsonl(out.sums)), sorted(want.sums));
  assert.deepEqual(sorted(readJsonl(out.windows)), sorted(want.windows));

  // Exactly the bad records, each once, with the operator, the reason, and the record as it was read.
  const letters = readJsonl<DeadLetter>(result.deadLetterPath!);
  const byId = new Map(input.map((e) => [e.id, e] as const));
  const got = letters
    .map((d) => ({ id: recordOf(d).id, operator: d.operatorName, message: d.error.message, code: d.error.code, attempts: d.attempts }))
    .sort((a, b) => a.id - b.id);
  assert.deepEqual(
    got,
    bad.map((e) => ({ id: e.id, ...EXPECTED[e.bad!], attempts: 1 })),
  );
  for (const d of letters) assert.deepEqual(recordOf(d), byId.get(recordOf(d).id), `the dead letter of ${d.operatorName} holds the record as read`);
  assert.equal(result.deadLetters, bad.length);

  // The counts agree: a record is dead where it failed, and goes no further.
  const count = (prefix: string) => bad.filter((e) => e.bad!.startsWith(prefix)).length;
  const [badTs, badKey, badState] = [count("ts-"), count("key-"), count("state-")];
  assert.deepEqual(result.counts["timestamps"], { in: N, out: N - badTs, dead: badTs });
  assert.deepEqual(result.counts["by-k"], { in: N - badTs, out: N - badTs - badKey, dead: badKey });
  assert.deepEqual(result.counts["sums"], { in: N - badTs - badKey, out: want.sums.length, dead: badState });
  assert.deepEqual(result.counts["per-10s"], { in: N - badTs - badKey, out: want.windows.length, dead: 0 });
});
