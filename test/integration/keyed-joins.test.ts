/**
 * Joins of two keyed streams for real: a tumbling-window join and an interval join, over two file
 * sources (bounded, read in several splits) and over two Kafka topics (streaming), against a plain
 * reference: every pair of equal keys in one window, and every pair with
 * `l.ts + lower <= r.ts <= l.ts + upper`. The input has keys on one side only, several records per
 * key and window, out-of-order records within the bound, and pairs exactly on and just past the
 * bounds. No record is late: with two bounded sources the watermark stays back until the input
 * ends; streaming, each topic is out of order by less than the bound and the watermark is the
 * minimum over the topics.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pipeline, {
  BOUND_MS,
  JOIN_BRANCHES,
  LOWER_MS,
  UPPER_MS,
  WINDOW_MS,
  type IntervalPair,
  type JoinEv,
  type WindowPair,
} from "../fixtures/keyed-joins-pipeline.js";
import { readJsonl, runJob, testConfig, until } from "../support/harness.js";
import { assertBranches, FLUSH_KEY, normalized } from "../support/keyed-reference.js";
import { runStreaming, streamConfig, testKafka } from "../support/kafka.js";

/** Records per side (before the hand-made ones at the bounds). */
const N = 300;
/** The key of each side's last record, an hour on: its watermark fires every window (streaming). */

const T0 = Date.UTC(2026, 0, 1);

/** `n` records of `side` over keys a-f (plus `only`, a key the other side never has), ~400 ms apart, 1 in 7 up to 1.5 s out of order. */
function sideInput(side: "L" | "R", n: number, only: string, seed: number): JoinEv[] {
  let s = seed;
  const rand = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  let t = T0;
  const out: JoinEv[] = [];
  for (let i = 0; i < n; i++) {
    t += Math.floor(rand() * 800);
    const ts = rand() < 1 / 7 ? t - Math.floor(rand() * 1_500) : t;
    const k = rand() < 0.08 ? only : "abcdef"[Math.floor(rand() * 6)]!;
    out.push({ side, id: (side === "L" ? 0 : 100_000) + i, k, ts });
  }
  return out;
}

/** Puts `e` before the first record later than it, so the side stays out of order by less than the bound. */
function insertInOrder(records: JoinEv[], e: JoinEv): void {
  const at = records.findIndex((r) => r.ts > e.ts);
  records.splice(at < 0 ? records.length : at, 0, e);
}

/** Both sides: random records, then pairs of key "edge" on and just past the interval bounds and a window's end, then the flush records. */
function joinInput(): { left: JoinEv[]; right: JoinEv[] } {
  const left = sideInput("L", N, "left-only", 5);
  const right = sideInput("R", N, "right-only", 9);
  // A left record in the last second of the window [T0 + 50 s, T0 + 60 s).
  const at = T0 + 59_000;
  insertInOrder(left, { side: "L", id: 90_000, k: "edge", ts: at });
  const offsets = [LOWER_MS - 1, LOWER_MS, 0, 999, UPPER_MS, UPPER_MS + 1, -9_000, -9_001];
  offsets.forEach((d, i) => insertInOrder(right, { side: "R", id: 190_000 + i, k: "edge", ts: at + d }));
  const end = Math.max(...[...left, ...right].map((e) => e.ts)) + 3_600_000;
  left.push({ side: "L", id: 99_999, k: FLUSH_KEY, ts: end });
  right.push({ side: "R", id: 199_999, k: FLUSH_KEY, ts: end });
  return { left, right };
}

/** What each sink should hold, as sorted JSON strings (the flush key left out). */
function joinReference(left: readonly JoinEv[], right: readonly JoinEv[]): Record<(typeof JOIN_BRANCHES)[number], string[]> {
  const joined: WindowPair[] = [];
  const interval: IntervalPair[] = [];
  for (const l of left) {
    for (const r of right) {
      if (l.k !== r.k || l.k === FLUSH_KEY) continue;
      if (Math.floor(l.ts / WINDOW_MS) === Math.floor(r.ts / WINDOW_MS)) joined.push({ k: l.k, l: l.id, r: r.id });
      if (l.ts + LOWER_MS <= r.ts && r.ts <= l.ts + UPPER_MS) interval.push({ k: l.k, l: l.id, r: r.id, lt: l.ts, rt: r.ts });
    }
  }
  return { joined: normalized(joined), interval: normalized(interval) };
}

/** The input is what the tests claim: out of order within the bound, keys on one side only, pairs on the bounds. */
function checkInput(left: readonly JoinEv[], right: readonly JoinEv[], expected: Record<string, string[]>): void {
  for (const side of [left, right]) {
    let max = -Infinity;
    let disorder = 0;
    for (const e of side) {
      disorder = Math.max(disorder, max - e.ts);
      max = Math.max(max, e.ts);
    }
    assert.ok(disorder > 0 && disorder < BOUND_MS, `out of order by ${disorder} ms`);
  }
  assert.ok(left.some((e) => e.k === "left-only") && right.some((e) => e.k === "right-only"));
  const edge = expected.interval!.filter((r) => r.includes('"k":"edge"')).map((r) => (JSON.parse(r) as IntervalPair).rt - (JSON.parse(r) as IntervalPair).lt);
  assert.deepEqual(
    edge.sort((a, b) => a - b),
    [LOWER_MS, 0, 999, UPPER_MS],
  );
  assert.equal(expected.joined!.filter((r) => r.includes('"k":"edge"')).length, 5, "the edge pairs in the left record's window");
  // Several records per key and window on both sides: more pairs than records.
  assert.ok(expected.joined!.length > 2 * N, `window pairs: ${expected.joined!.length}`);
  assert.ok(expected.interval!.length > N / 2, `interval pairs: ${expected.interval!.length}`);
}

test("bounded: a window join and an interval join of two file sources equal the reference, over parallel splits", async () => {
  const { left, right } = joinInput();
  const expected = joinReference(left, right);
  checkInput(left, right, expected);
  const config = testConfig("keyed-joins", { "execution.parallelism": 2, "execution.split-bytes": 4 * 1024 });
  const files = { left: join(config.dir, "left.jsonl"), right: join(config.dir, "right.jsonl") };
  writeFileSync(files.left, left.map((e) => JSON.stringify(e)).join("\n") + "\n");
  writeFileSync(files.right, right.map((e) => JSON.stringify(e)).join("\n") + "\n");
  const out = { joined: join(config.dir, "joined.jsonl"), interval: join(config.dir, "interval.jsonl") };
  delete process.env.JOINS_IN;
  const { result } = await runJob(pipeline, config, { ...files, ...out });
  assert.equal(result.phase, "done");
  assert.ok(result.splitsTotal >= 6, `the inputs were read as ${result.splitsTotal} splits`);
  assertBranches({ joined: readJsonl(out.joined), interval: readJsonl(out.interval) }, expected, JOIN_BRANCHES);
  assert.equal(result.deadLetters, 0);
});

test("streaming: the same joins over two Kafka topics give the same pairs, each once", async () => {
  const { left, right } = joinInput();
  const expected = joinReference(left, right);
  const tag = `joins-${process.pid}-${Date.now()}`;
  const t = { left: `${tag}.left`, right: `${tag}.right`, out: `${tag}.out`, dlq: `${tag}.dlq` };
  const kafka = testKafka();
  const admin = await kafka.admin();
  try {
    for (const topic of [t.left, t.right, t.dlq, ...JOIN_BRANCHES.map((b) => `${t.out}.${b}`)]) await admin.ensureTopic(topic, 1, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
  const producer = await kafka.producer();
  try {
    for (const [topic, records] of [
      [t.left, left],
      [t.right, right],
    ] as const) {
      await producer.send(
        topic,
        records.map((e) => ({ key: e.k, value: JSON.stringify(e), timestamp: String(e.ts) })),
      );
    }
  } finally {
    await producer.close();
  }
  process.env.JOINS_IN = `${t.left},${t.right}`;
  process.env.JOINS_OUT = t.out;
  const config = streamConfig("keyed-joins-stream", t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 200 });
  const run = await runStreaming(pipeline, config, tag);
  try {
    // The flush records pair with each other in both joins; the window join's pairs wait for the flush's watermark.
    await until(
      "every pair through both sinks",
      async () => {
        const p = await run.job.progress();
        const done = (branch: string) => (p.counts[`out-${branch}`]?.out ?? 0) >= expected[branch as "joined"].length;
        return done("joined") && done("interval") ? p : undefined;
      },
      240_000,
    );
    const actual: Record<string, unknown[]> = {};
    for (const b of JOIN_BRANCHES) {
      actual[b] = (await kafka.readAll(`${t.out}.${b}`, { idleTimeoutMs: 1_500 })).map((m) => JSON.parse(m.value!.toString("utf8")) as unknown);
    }
    assertBranches(actual, expected, JOIN_BRANCHES);
    assert.equal((await run.job.progress()).deadLetters, 0);
  } finally {
    delete process.env.JOINS_IN;
    delete process.env.JOINS_OUT;
    await run.close();
  }
});
