/**
 * Failures in the stage runner against an in-memory host: per-record retries that pass or end in a
 * dead letter, a NonRetryableError (or any non-retriable Sage error) straight to the dead letters,
 * an error that fails the job, and mapBatch's fallback to single records when a batch fails.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../../core/api/pipeline.js";
import { FileSink } from "../../../core/api/connectors.js";
import type { RecordContext } from "../../../core/api/context.js";
import { ModelUnavailableError, NonRetryableError, NotRecordedError, SageError } from "../../../core/errors.js";
import { MemoryHost, readJsonl, type DeadLetter } from "./memory-host.js";

/** Fast retries: the policy's tries count, not its waits. */
const RETRY = { maxAttempts: 3, initialIntervalMs: 1, maxIntervalMs: 2 };

test("a record is retried per the operator's policy: one that recovers goes on, one that keeps failing is dead-lettered", async () => {
  const calls = new Map<number, number[]>();
  const pipeline = definePipeline("unit-retries", (env) =>
    env
      .fromCollection([1, 2, 3, 4], { name: "numbers" })
      .map(
        (n: number, ctx: RecordContext) => {
          calls.set(n, [...(calls.get(n) ?? []), ctx.attempt]);
          if (n === 2 && ctx.attempt < 3) throw new Error(`2 fails on try ${ctx.attempt}`);
          if (n === 4) throw new RangeError("4 never passes");
          return n * 100;
        },
        { name: "flaky", retry: RETRY },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    const job = await host.run("retries", { output: host.path("out.jsonl") });
    assert.deepEqual(readJsonl(host.path("out.jsonl")), [100, 200, 300]);
    assert.deepEqual(Object.fromEntries(calls), { 1: [1], 2: [1, 2, 3], 3: [1], 4: [1, 2, 3] });
    assert.deepEqual(job.counts.flaky, { in: 4, out: 3, dead: 1 });
    const letters = readJsonl<DeadLetter>(job.commit.deadLetterPath!);
    assert.deepEqual(
      letters.map((l) => ({ operator: l.operator, attempts: l.attempts, error: { name: l.error.name, message: l.error.message }, record: l.record })),
      [{ operator: "flaky", attempts: 3, error: { name: "RangeError", message: "4 never passes" }, record: 4 }],
    );
    // The letter keeps where the error was thrown: the stack starts with it.
    assert.match(letters[0]!.error.stack ?? "", /^RangeError: 4 never passes\n\s+at /);
  } finally {
    await host.close();
  }
});

test("an async function is retried the same way, and a timeout counts as a failed try", async () => {
  const tries: number[] = [];
  const pipeline = definePipeline("unit-async-retries", (env) =>
    env
      .fromCollection([1], { name: "numbers" })
      .map(
        async (n: number, ctx: RecordContext) => {
          tries.push(ctx.attempt);
          if (ctx.attempt === 1) await new Promise((r) => setTimeout(r, 200));
          return n + 1;
        },
        { name: "slow-first", retry: RETRY, timeoutMs: 50 },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    await host.run("async", { output: host.path("out.jsonl") });
    assert.deepEqual(readJsonl(host.path("out.jsonl")), [2]);
    assert.deepEqual(tries, [1, 2]);
  } finally {
    await host.close();
  }
});

test("a NonRetryableError, or a Sage error that is not retriable, goes straight to the dead letters", async () => {
  const tries = new Map<string, number>();
  const pipeline = definePipeline("unit-non-retryable", (env) =>
    env
      .fromCollection(["ok", "bad", "own"], { name: "words" })
      .map(
        (w: string) => {
          tries.set(w, (tries.get(w) ?? 0) + 1);
          if (w === "bad") throw new NonRetryableError("bad can never pass");
          if (w === "own") throw new SageError("USER_CODE", "a user's own error class");
          return w.toUpperCase();
        },
        { name: "upper", retry: RETRY },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    const job = await host.run("non-retryable", { output: host.path("out.jsonl") });
    assert.deepEqual(readJsonl(host.path("out.jsonl")), ["OK"]);
    assert.deepEqual(Object.fromEntries(tries), { ok: 1, bad: 1, own: 1 });
    const letters = readJsonl<DeadLetter>(job.commit.deadLetterPath!);
    assert.deepEqual(
      letters.map((l) => [l.record, l.attempts, l.error.code]),
      [
        ["bad", 1, "NON_RETRYABLE"],
        ["own", 1, "USER_CODE"],
      ],
    );
    assert.deepEqual(job.counts.upper, { in: 3, out: 1, dead: 2 });
  } finally {
    await host.close();
  }
});

test("an error that fails the job leaves the record at once and fails the run, retriable or not", async () => {
  for (const [name, make, retriable] of [
    ["not-recorded", () => new NotRecordedError("no recorded answer"), false],
    ["model-down", () => new ModelUnavailableError("model busy", null), true],
  ] as const) {
    let tries = 0;
    const pipeline = definePipeline(`unit-fatal-${name}`, (env) =>
      env
        .fromCollection([1, 2, 3], { name: "numbers" })
        .map(
          (n: number) => {
            tries++;
            if (n === 2) throw make();
            return n;
          },
          { name: "fails", retry: RETRY },
        )
        .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
    );
    const host = new MemoryHost(pipeline);
    try {
      await assert.rejects(host.run(name, { output: host.path("out.jsonl") }), (err: unknown) => {
        assert.ok(err instanceof SageError, `${name}: a Sage error`);
        assert.equal(err.scope, "job");
        assert.equal(err.retriable, retriable);
        return true;
      });
      assert.equal(tries, 2, `${name}: no per-record retry, no record after it`);
    } finally {
      await host.close();
    }
  }
});

test("mapBatch: a batch that fails for good is retried record by record, so only the bad record is dead-lettered", async () => {
  const batches: number[][] = [];
  const pipeline = definePipeline("unit-map-batch", (env) =>
    env
      .fromCollection([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { name: "numbers" })
      .mapBatch(
        (ns: number[]) => {
          batches.push(ns);
          if (ns.includes(6)) throw new Error("a batch with 6 fails");
          if (ns.includes(9) && ns.length > 1) return ns.slice(1).map((n) => -n);
          return ns.map((n) => -n);
        },
        { name: "negate", batchSize: 4, retry: { maxAttempts: 2, initialIntervalMs: 1 } },
      )
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const host = new MemoryHost(pipeline);
  try {
    const job = await host.run("map-batch", { output: host.path("out.jsonl") });
    assert.deepEqual(readJsonl(host.path("out.jsonl")), [-1, -2, -3, -4, -5, -7, -8, -9, -10]);
    // The collection runs as splits of 3, 3, 3 and 1 (a quarter of it per slot): a batch ends with its split.
    assert.deepEqual(batches, [
      [1, 2, 3],
      [4, 5, 6], // fails, and is retried once
      [4, 5, 6],
      [4], // then record by record: only 6 fails, on both tries
      [5],
      [6],
      [6],
      [7, 8, 9], // returns one result short: not retried, record by record at once
      [7],
      [8],
      [9],
      [10],
    ]);
    const letters = readJsonl<DeadLetter>(job.commit.deadLetterPath!);
    assert.deepEqual(
      letters.map((l) => [l.record, l.attempts, l.error.message]),
      [[6, 2, "a batch with 6 fails"]],
    );
    assert.deepEqual(job.counts.negate, { in: 10, out: 9, dead: 1 });
  } finally {
    await host.close();
  }
});
