/** Unit tests of `sage dlq`'s pure parts: reading letters, filtering, grouping, redrive ids, history, and where a re-driven record enters a plan. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../core/api/connectors.js";
import { MAX_HISTORY, redriveEntryOf, withFailure, type Failure } from "../../core/plan/redrive.js";
import { letterFromLine, letterFromMessage, totalAttempts, type DeadLetter } from "../../client/dlq/letters.js";
import { errorPattern, groupLetters, matches, redriveIdOf } from "../../client/dlq/selection.js";

/** A letter with the given fields, the rest defaulted. */
function letter(fields: Partial<DeadLetter>): DeadLetter {
  return {
    id: "j:1",
    job: "j",
    origin: "j",
    operator: "check",
    error: "NonRetryableError: poison record 7",
    stack: null,
    attempts: 1,
    at: null,
    source: null,
    key: null,
    record: null,
    timestamp: null,
    history: [],
    redrive: null,
    ...fields,
  };
}

test("error patterns take out what varies per record: numbers, quoted text, ids", () => {
  assert.equal(errorPattern("NonRetryableError: poison record 7"), "NonRetryableError: poison record #");
  assert.equal(errorPattern('invalid JSON at /tmp/in-3.jsonl byte 1204: Unexpected token "x"'), 'invalid JSON at /tmp/in-#.jsonl byte #: Unexpected token "…"');
  assert.equal(errorPattern("order 5f0c2c1e-9a3b-4c7d-8e1f-0a1b2c3d4e5f not found ('eu-1')"), "order # not found ('…')");
  assert.equal(errorPattern("timeout after 2.5 s at 0x1f"), "timeout after # s at #");
});

test("the filter selects by exact operator id and by error text, case-insensitively", () => {
  const l = letter({ operator: "check", error: "NonRetryableError: Poison record 7" });
  assert.equal(matches(l, {}), true);
  assert.equal(matches(l, { operator: "check" }), true);
  assert.equal(matches(l, { operator: "chec" }), false);
  assert.equal(matches(l, { error: "poison" }), true);
  assert.equal(matches(l, { operator: "check", error: "timeout" }), false);
});

test("letters group by operator and error pattern, largest group first, with first/last time and history", () => {
  const letters = [
    letter({ id: "a", error: "NonRetryableError: poison record 7", at: "2026-01-01T00:00:02.000Z" }),
    letter({ id: "b", error: "NonRetryableError: poison record 19", at: "2026-01-01T00:00:01.000Z" }),
    letter({
      id: "c",
      error: "NonRetryableError: poison record 23",
      at: "2026-01-01T00:00:05.000Z",
      attempts: 2,
      history: [{ job: "j", operator: "check", error: "Error: down", attempts: 3 }],
    }),
    letter({ id: "d", operator: "lines", error: "NonRetryableError: invalid JSON at x byte 4" }),
  ];
  const groups = groupLetters(letters);
  assert.equal(groups.length, 2);
  assert.deepEqual(
    { ...groups[0]!, sample: undefined },
    {
      operator: "check",
      error: "NonRetryableError: poison record #",
      sample: undefined,
      count: 3,
      first: "2026-01-01T00:00:01.000Z",
      last: "2026-01-01T00:00:05.000Z",
      failedBefore: 1,
      maxAttempts: 5,
    },
  );
  assert.equal(groups[1]!.operator, "lines");
  assert.equal(groups[1]!.first, null);
  assert.deepEqual(groupLetters([]), []);
});

test("a redrive's default id depends on the job, the filter and the target, and on nothing else", () => {
  const a = redriveIdOf("run-1", { operator: "check" }, "plan-a");
  assert.match(a, /^r-[0-9a-f]{10}$/);
  assert.equal(redriveIdOf("run-1", { operator: "check" }, "plan-a"), a);
  assert.notEqual(redriveIdOf("run-2", { operator: "check" }, "plan-a"), a);
  assert.notEqual(redriveIdOf("run-1", { operator: "check", error: "poison" }, "plan-a"), a);
  assert.notEqual(redriveIdOf("run-1", { operator: "check" }, "plan-b"), a);
});

test("a history keeps the newest failures and cuts long error texts", () => {
  let h: Failure[] = [];
  for (let i = 0; i < MAX_HISTORY + 3; i++)
    h = withFailure(h, { job: "j", operator: "op", error: `E: ${i}${"x".repeat(i === MAX_HISTORY + 2 ? 1000 : 0)}`, attempts: 1 });
  assert.equal(h.length, MAX_HISTORY);
  assert.equal(h[0]!.error, "E: 3");
  assert.ok(h.at(-1)!.error.length <= 500 && h.at(-1)!.error.endsWith("…"));
});

test("a file dead letter and a topic dead letter read the same way, with their history and origin", () => {
  const history: Failure[] = [{ job: "run-1", operator: "check", error: "Error: down", attempts: 3, at: "2026-01-01T00:00:00.000Z" }];
  const line = JSON.stringify({
    pipeline: "p",
    jobId: "run-1.r-1",
    operator: "check",
    shard: "s0-0",
    attempts: 2,
    error: { name: "NonRetryableError", message: "poison record 7", stack: "NonRetryableError: poison record 7\n    at check (/app/pipeline.ts:9:11)" },
    record: { id: 7 },
    at: "2026-01-02T00:00:00.000Z",
    redrive: "r-1",
    history,
  });
  const f = letterFromLine("run-1.r-1", 3, line);
  assert.equal(f.id, "run-1.r-1:3");
  assert.equal(f.origin, "run-1");
  assert.equal(f.error, "NonRetryableError: poison record 7");
  assert.equal(f.source, "shard s0-0");
  assert.match(f.stack ?? "", /at check \(\/app\/pipeline\.ts:9:11\)/);
  assert.equal(totalAttempts(f), 5);
  const m = letterFromMessage("p.dlq", {
    partition: 0,
    offset: "12",
    key: Buffer.from("k"),
    value: Buffer.from('{"id":7}'),
    timestamp: "1767225600000",
    headers: {
      "sage-job": "run-2",
      "sage-operator": "check",
      "sage-attempts": "1",
      "sage-error": "NonRetryableError: poison record 7",
      "sage-source": "in[0]@40",
      "sage-history": JSON.stringify(history),
      "sage-redrive": "r-1",
      "sage-error-stack": "NonRetryableError: poison record 7\n    at check (/app/pipeline.ts:9:11)",
    },
  })!;
  assert.equal(m.stack, f.stack);
  assert.equal(m.id, "p.dlq[0]@12");
  assert.equal(m.origin, "run-1");
  assert.equal(m.job, "run-2");
  assert.deepEqual(m.record, { id: 7 });
  assert.equal(m.source, "in[0]@40");
  assert.equal(m.at, "2026-01-01T00:00:00.000Z");
  assert.equal(letterFromMessage("p.dlq", { partition: 0, offset: "1", key: null, value: null, timestamp: "0", headers: {} }), null);
  const raw = letterFromMessage("p.dlq", {
    partition: 0,
    offset: "2",
    key: null,
    value: Buffer.from([0xff, 0xfe]),
    timestamp: "0",
    headers: { "sage-job": "j", "sage-operator": "in" },
  })!;
  assert.deepEqual(raw.record, { base64: "//4=" });
});

test("a re-driven record enters at its operator's stage when that stage reads a source, else by an edge from one", () => {
  const pipeline = definePipeline("redrive-entry", (env) => {
    const parsed = env.fromSource(FileSource.jsonl<{ n: number }>(env.param("input")), { name: "lines" }).map((r) => r, { name: "check" });
    const wide = parsed.map((r) => r, { name: "wide", parallelism: 3 });
    wide.map((r) => r, { name: "after-wide" }).sink(FileSink.jsonl(env.param("output")), { name: "out" });
    parsed
      .connect(wide)
      .coMap(
        (a) => a,
        (b) => b,
        { name: "both" },
      )
      .sink(FileSink.jsonl(env.param("other")), { name: "out2" });
  });
  const { plan } = pipeline.compile({ parallelism: 2 });
  const source = plan.stages.find((s) => s.source)!;
  assert.deepEqual(redriveEntryOf(plan, "check"), { stage: source.id, edge: null });
  assert.deepEqual(redriveEntryOf(plan, "lines"), { stage: source.id, edge: null });
  const wide = redriveEntryOf(plan, "wide");
  assert.ok("stage" in wide && wide.stage === source.id && wide.edge?.toOperator === "wide", JSON.stringify(wide));
  assert.match((redriveEntryOf(plan, "both") as { refused: string }).refused, /2 inputs/);
  assert.match((redriveEntryOf(plan, "nope") as { refused: string }).refused, /no operator "nope"/);
  // "after-wide" runs at the job's parallelism, in a stage after "wide"'s: two edges from the source.
  assert.match((redriveEntryOf(plan, "after-wide") as { refused: string }).refused, /more than one stage boundary/);
});

test("a keyed operator's letter enters by the keyed edge with its key; one without a key (a window or timer that failed) cannot", () => {
  const pipeline = definePipeline("redrive-keyed", (env) =>
    env
      .fromSource(FileSource.jsonl<{ k: string; n: number }>(env.param("input")), { name: "lines" })
      .keyBy((r) => r.k, { name: "by-k" })
      .reduce((a, b) => ({ k: a.k, n: a.n + b.n }), { name: "sum" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const { plan } = pipeline.compile({ parallelism: 2 });
  const entry = redriveEntryOf(plan, "sum", '"a"');
  assert.ok("stage" in entry && entry.edge?.keyed === true && entry.stage === plan.stages.find((s) => s.source)!.id, JSON.stringify(entry));
  assert.match((redriveEntryOf(plan, "sum", null) as { refused: string }).refused, /window or timer of "sum" failed to fire/);
});
