/** The LLM budget: the durable ledger (idempotent by key, read across processes, torn lines) and admission, on a manual clock. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BudgetLedger, type BudgetWindows } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, budgetWindows, LlmBudget, WINDOW_DIVISOR_ENV, type BudgetCall } from "../../connectors/llm/budget-admission.js";
import { parseConfig } from "../../core/config/schema.js";
import { BudgetExceededError, BudgetPausedError, ConfigError, NonRetryableError } from "../../core/errors.js";
import { metricsRegistry } from "../../monitoring/registry.js";
import { METRICS } from "../../monitoring/names.js";
import { ManualClock } from "../support/manual-clock.js";

const charge = (key: string, at: number, tokens: number, cost: number) => ({ key, at, model: "m", operator: "op", tokens, cost });

test("a ledger counts a key once, whoever appends it, and a second reader sees the same spend", async () => {
  const path = join(await mkdtemp(join(tmpdir(), "sage-ledger-")), "l.jsonl");
  const a = new BudgetLedger(path);
  assert.equal(await a.charge(charge("k1", 0, 100, 0.5)), true);
  assert.equal(await a.charge(charge("k1", 10, 100, 0.5)), false, "a retried call is not charged again");
  // Another process raced on the same key and appended it anyway: readers drop the duplicate.
  await appendFile(path, `${JSON.stringify(charge("k1", 20, 100, 0.5))}\n`);
  const b = new BudgetLedger(path);
  assert.equal(await b.charge(charge("k2", 30_000, 50, 0.25)), true);
  await a.refresh();
  for (const l of [a, b]) assert.deepEqual(l.spend(60_000), { tokensLastMinute: 50, dollarsLastHour: 0.75, dollarsTotal: 0.75, charges: 2 });
  assert.deepEqual(
    a.spend(3_600_000 + 1),
    { tokensLastMinute: 0, dollarsLastHour: 0.25, dollarsTotal: 0.75, charges: 2 },
    "the hour window moves, the total stays",
  );
  assert.equal((await readFile(path, "utf8")).trim().split("\n").length, 3);
});

test("a line torn by a crash is skipped and the next charge starts on a line of its own", async () => {
  const path = join(await mkdtemp(join(tmpdir(), "sage-ledger-")), "l.jsonl");
  const a = new BudgetLedger(path);
  await a.charge(charge("k1", 0, 1, 1));
  await appendFile(path, '{"key":"k2","at":0,"mod');
  const b = new BudgetLedger(path);
  assert.equal(await b.charge(charge("k3", 0, 1, 2)), true);
  await a.refresh();
  assert.equal(a.spend(0).dollarsTotal, 3);
  assert.equal(a.torn, 1);
  assert.equal(new BudgetLedger(path).has("k3"), false, "nothing is read before refresh");
});

function budget(overrides: object, clock: ManualClock, dataDir: string, windows?: BudgetWindows): LlmBudget {
  return new LlmBudget(parseConfig({ llm: { budget: overrides } }).llm.budget, dataDir, clock, windows);
}
const call = (requestKey: string, tokens: number, cost: number, jobId = "j"): BudgetCall => ({
  pipeline: "p",
  jobId,
  operator: "gen",
  model: "m",
  requestKey,
  tokens,
  cost,
});

test("admission: a call whose worst case would cross dollars-total is refused, naming the limit; spend survives a new process", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sage-budget-"));
  const clock = new ManualClock();
  const b = budget({ job: { "dollars-total": 1 } }, clock, dir);
  assert.equal(b.enabled, true);
  const first = await b.admit(call("r1", 10, 0.6));
  // Admitted but not charged yet: it counts against the next admission.
  await assert.rejects(b.admit(call("r2", 10, 0.6)), (e: unknown) => e instanceof BudgetExceededError && e instanceof NonRetryableError);
  await b.settle(first, { tokens: 8, cost: 0.4 });
  const second = await b.admit(call("r2", 10, 0.6));
  await b.settle(second, { tokens: 8, cost: 0.5 });
  await assert.rejects(b.admit(call("r3", 10, 0.2)), (e: unknown) => {
    assert.ok(e instanceof BudgetExceededError);
    assert.equal(e.budget, "job");
    assert.equal(e.limit, "dollars-total");
    assert.equal(e.message, "llm budget exceeded: job p/j dollars-total 1: spent 0.9 USD, the gen call to m may use 0.2 USD more");
    return true;
  });
  const restarted = budget({ job: { "dollars-total": 1 } }, clock, dir);
  assert.deepEqual(await restarted.spend("p", "j"), { tokensLastMinute: 16, dollarsLastHour: 0.9, dollarsTotal: 0.9, charges: 2 });
  const retried = await restarted.admit(call("r1", 10, 0.6));
  assert.equal(retried.charges, false, "a request already charged is admitted again at no cost");
  await restarted.settle(retried, { tokens: 8, cost: 0.4 });
  assert.equal((await restarted.spend("p", "j")).dollarsTotal, 0.9, "and is not counted twice");
  await assert.rejects(restarted.admit(call("r3", 10, 0.2)), BudgetExceededError);
  await restarted.settle(await restarted.admit(call("r4", 10, 0.1)), null);
  assert.equal((await restarted.spend("p", "j")).charges, 2, "a call that failed is released, not charged");
  const gauge = metricsRegistry.getSingleMetric(METRICS.llmBudgetRemainingUsd);
  const left = (await gauge!.get()).values.find((v) => v.labels.job_id === "j" && v.labels.limit === "dollars-total");
  assert.ok(left && Math.abs(left.value - 0.1) < 1e-9, `remaining dollars-total: ${JSON.stringify(left)}`);
});

test("admission: tokens-per-minute refuses within the minute and admits after it; the pipeline budget spans jobs", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sage-budget-"));
  const clock = new ManualClock();
  const b = budget({ job: { "tokens-per-minute": 100 }, pipeline: { "dollars-per-hour": 0.8 } }, clock, dir);
  await b.settle(await b.admit(call("a", 60, 0.25)), { tokens: 60, cost: 0.25 });
  await assert.rejects(b.admit(call("b", 60, 0.25)), (e: unknown) => e instanceof BudgetExceededError && e.limit === "tokens-per-minute");
  await clock.advance(60_000);
  await b.settle(await b.admit(call("b", 60, 0.25)), { tokens: 60, cost: 0.25 });
  await b.settle(await b.admit(call("c", 10, 0.25, "other-job")), { tokens: 10, cost: 0.25 });
  await assert.rejects(b.admit(call("d", 10, 0.25, "third-job")), (e: unknown) => e instanceof BudgetExceededError && e.budget === "pipeline");
  assert.equal((await b.spend("p", null)).dollarsTotal, 0.75);
  await clock.advance(3_600_000);
  await b.admit(call("d", 10, 0.25, "third-job"));
  const paths = budgetLedgerPaths(dir, "p", "j");
  assert.equal((await readFile(paths.pipeline, "utf8")).trim().split("\n").length, 3);
});

test("no limit set: the budget is off", () => {
  assert.equal(budget({}, new ManualClock(), "/nonexistent").enabled, false);
});

test("policy pause: the error says when the window frees enough for the call; dollars-total and an oversized call dead-letter", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sage-budget-"));
  const clock = new ManualClock();
  const b = budget({ job: { "tokens-per-minute": 100, "dollars-total": 1 }, policy: "pause" }, clock, dir);
  await b.settle(await b.admit(call("a", 50, 0.25)), { tokens: 50, cost: 0.25 });
  await clock.advance(10_000);
  await b.settle(await b.admit(call("b", 40, 0.25)), { tokens: 40, cost: 0.25 });
  // 90 of 100 spent: 30 more needs "a" (50 tokens, at 0) out of the minute, at 60 s; 70 more needs "b" too, at 70 s.
  await assert.rejects(b.admit(call("c", 30, 0.1)), (e: unknown) => {
    assert.ok(e instanceof BudgetPausedError && !(e instanceof NonRetryableError));
    assert.equal(e.until, 60_000);
    assert.equal(e.code, "LLM_BUDGET_PAUSED");
    assert.equal(e.retriable, true);
    assert.equal(e.scope, "job", "it fails the stage unit, not the record");
    assert.match(e.reason, /^job p\/j tokens-per-minute 100: spent 90 tokens, the gen call to m may use 30 tokens more$/);
    return true;
  });
  await assert.rejects(b.admit(call("d", 70, 0.1)), (e: unknown) => e instanceof BudgetPausedError && e.until === 70_000);
  await assert.rejects(b.admit(call("e", 101, 0.1)), (e: unknown) => {
    assert.ok(e instanceof BudgetExceededError);
    assert.match(e.message, /may use 101 tokens more \(policy pause: the call alone is larger than the limit, so the record goes to the dead letters\)$/);
    return true;
  });
  await assert.rejects(b.admit(call("f", 1, 0.6)), (e: unknown) => {
    assert.ok(e instanceof BudgetExceededError);
    assert.equal(e.limit, "dollars-total");
    assert.match(e.message, /\(policy pause: a dollars-total budget does not free with time, so the record goes to the dead letters\)$/);
    return true;
  });
  await clock.advance(50_000);
  await b.admit(call("c", 30, 0.1));
});

test("the window divisor is no configuration key; its environment variable must be positive", () => {
  assert.throws(() => parseConfig({ llm: { budget: { "window-divisor": 360 } } }));
  assert.deepEqual(budgetWindows({}), { minute: 60_000, hour: 3_600_000 });
  assert.throws(() => budgetWindows({ [WINDOW_DIVISOR_ENV]: "0" }), RangeError);
});

test("policy pause: the windows shrink by the tests' divisor, and in-flight calls count as leaving a window from now", async () => {
  const dir = await mkdtemp(join(tmpdir(), "sage-budget-"));
  const clock = new ManualClock();
  const b = budget({ job: { "dollars-per-hour": 1 }, policy: "pause" }, clock, dir, budgetWindows({ [WINDOW_DIVISOR_ENV]: "360" }));
  await b.settle(await b.admit(call("a", 1, 0.5)), { tokens: 1, cost: 0.5 });
  await clock.advance(1_000);
  await b.admit(call("b", 1, 0.5));
  await assert.rejects(b.admit(call("c", 1, 0.5)), (e: unknown) => e instanceof BudgetPausedError && e.until === 10_000, "the 10 s hour after a's charge");
  await assert.rejects(
    b.admit(call("d", 1, 1)),
    (e: unknown) => e instanceof BudgetPausedError && e.until === 11_000,
    "b is not charged yet: now plus the hour",
  );
});

test("policy downgrade needs downgrade-to; the policy is one of three", () => {
  assert.throws(
    () => parseConfig({ llm: { budget: { policy: "downgrade" } } }),
    (e: unknown) => e instanceof ConfigError && /llm\.budget\.downgrade-to/.test(e.message) && /policy downgrade needs the cheaper chat model/.test(e.message),
  );
  assert.throws(() => parseConfig({ llm: { budget: { policy: "wait" } } }), ConfigError);
  assert.equal(parseConfig({ llm: { budget: { policy: "downgrade", "downgrade-to": "small" } } }).llm.budget["downgrade-to"], "small");
});
