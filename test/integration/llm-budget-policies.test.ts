/**
 * `llm.budget` policies `pause` and `downgrade` on a real worker and dev server against the
 * DETERMINISTIC TEST PROVIDER (exact tokens, so exact dollars): a budget that allows half the
 * workload.
 * - `pause`: the stage unit that meets the exhausted budget waits on a durable workflow timer
 *   (`sage status` says so and until when), runs again once the window frees, and the job ends with
 *   every record answered, each model call made and charged once. The hour is 10 s here (the
 *   tests' `WINDOW_DIVISOR_ENV`), and an hour long where the test only looks at the pause.
 * - `downgrade`: the overflow goes to the cheaper model, its outputs say so in `llmDowngraded`,
 *   its spend is charged at its own price, and what the cheaper model cannot fit either is
 *   dead-lettered with both reasons.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { readUsage } from "../../connectors/llm/usage-ledger.js";
import { BudgetLedger, type Charge } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, WINDOW_DIVISOR_ENV } from "../../connectors/llm/budget-admission.js";
import { definePipeline, FileSink, FileSource } from "sage-temporal";
import { SageClient } from "../../client/sage-client.js";
import { cliEnv, progressUntil, readJsonl, runJob, sageCliBackground, startWorker, testConfig } from "../support/harness.js";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const PIPELINE = "llm-budget";
const CHAT_MODEL = "smollm2-135m-instruct";
const CHEAP_MODEL = "smollm2-mini";

interface Answered {
  id: number;
  answer: string;
  downgraded: string | null;
}

/** embed (batches of 4) -> prompt -> generate -> the answer and its downgrade mark. */
const pipeline = definePipeline(PIPELINE, (env) =>
  env
    .fromSource(FileSource.jsonl<{ id: number; key: string; text: string }>(env.param("input")), { name: "records" })
    .embed({ text: (r) => r.key, batchSize: 4, name: "embed" })
    .map((r) => ({ id: r.id, text: r.text }), { name: "strip" })
    .prompt("Q: {{text}}", { name: "prompt" })
    .generate({ maxTokens: 8, name: "generate" })
    .map((r): Answered => ({ id: r.id, answer: r.answer, downgraded: r.llmDowngraded ?? null }), { name: "format" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

/** $1 per prompt token of the chat model ("Q: r0aa bbbb": 3 tokens, $3, its estimate exact), nothing for answers or embeddings. */
function budgetConfig(label: string, overrides: Record<string, unknown>) {
  return testConfig(label, {
    "llm.base-url": `${provider.url}/v1`,
    "llm.prices": { [CHAT_MODEL]: { input: 1_000_000, output: 0 }, [CHEAP_MODEL]: { input: 250_000, output: 0 } },
    ...overrides,
  });
}

/** Eight records and where the job writes. */
function eightRecords(dir: string): { input: string; output: string } {
  const input = join(dir, "input.jsonl");
  writeFileSync(input, Array.from({ length: 8 }, (_, id) => JSON.stringify({ id, key: `key ${id}`, text: `r${id}aa bbbb` })).join("\n") + "\n");
  return { input, output: join(dir, "out.jsonl") };
}

async function ledger(dataDir: string, jobId: string): Promise<{ spend: ReturnType<BudgetLedger["spend"]>; charges: Charge[] }> {
  const path = budgetLedgerPaths(dataDir, PIPELINE, jobId).job;
  const l = new BudgetLedger(path);
  await l.refresh();
  const charges = readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Charge);
  return { spend: l.spend(Date.now()), charges };
}

/** Runs `sage <args>` without blocking this process's event loop; its exit code and output. */
async function cliOutput(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = sageCliBackground(args, { env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((done) => child.on("close", (c) => done(c ?? 1)));
  return { code, stdout, stderr };
}

test("pause: sage status says the job waits for the llm budget, and until when", async () => {
  provider.reset();
  // A real hour: the job stays paused while the test looks, then is cancelled.
  const config = budgetConfig("llm-budget-pause-status", { "llm.budget.job.dollars-per-hour": 12, "llm.budget.policy": "pause" });
  const params = eightRecords(config.dir);
  const w = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(pipeline, { jobId: "pause-status", params });
    const p = await progressUntil(job, "the pause", (q) => q.llmBudgetPause !== undefined);
    const pause = p.llmBudgetPause!;
    assert.equal(pause.reason, `job ${PIPELINE}/pause-status dollars-per-hour 12: spent 12 USD, the generate call to ${CHAT_MODEL} may use 3 USD more`);
    assert.equal(pause.units, 1);
    const until = Date.parse(pause.until);
    const firstCharge = Math.min(...(await ledger(config["data-dir"], "pause-status")).charges.filter((c) => c.cost > 0).map((c) => c.at));
    assert.equal(until, firstCharge + 3_600_000, "until the first paid call leaves the hour");
    assert.equal(provider.counts().chat, 4, "the call that would cross the budget was not made");

    // Not spawnSync: the worker in this process answers the status query meanwhile.
    const status = await cliOutput(["status", "pause-status"], cliEnv(config));
    assert.equal(status.code, 0, status.stderr);
    assert.ok(
      status.stdout.includes(`paused by llm budget until ${pause.until} (1 stage unit(s) waiting): ${pause.reason}`),
      `sage status shows the pause:\n${status.stdout}`,
    );
    await job.cancel();
  } finally {
    await client.close();
    await w.stop();
  }
});

test("pause: a budget for half the workload per (10 s) hour; the unit resumes after the window, and the totals are exact", async () => {
  provider.reset();
  const config = budgetConfig("llm-budget-pause", {
    "llm.budget.job.dollars-per-hour": 12,
    "llm.budget.policy": "pause",
  });
  const params = eightRecords(config.dir);
  // The hour is 10 s for this test's worker only (read when its model client starts).
  process.env[WINDOW_DIVISOR_ENV] = "360";
  const { result } = await runJob(pipeline, config, params, "pause").finally(() => delete process.env[WINDOW_DIVISOR_ENV]);

  assert.equal(result.deadLetters, 0);
  assert.deepEqual(
    readJsonl<Answered>(params.output)
      .map((r) => r.id)
      .sort(),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.equal(provider.counts().chat, 8, "each record asked once: a paused unit's answered records come from the cache");
  const { spend, charges } = await ledger(config["data-dir"], "pause");
  assert.equal(spend.dollarsTotal, 24);
  assert.equal(spend.charges, 8 + 2, "8 chat calls, 2 embedding batches, each charged once");
  // No hour (10 s here) held more than $12 of charges.
  const paid = charges.filter((c) => c.cost > 0).sort((a, b) => a.at - b.at);
  for (const c of paid) {
    const inHour = paid.filter((d) => d.at <= c.at && d.at > c.at - 10_000).reduce((n, d) => n + d.cost, 0);
    assert.ok(inHour <= 12, `$${inHour} in the hour before ${c.at}`);
  }
  assert.equal((await readUsage(config["data-dir"], PIPELINE, "pause"))!.total.cost, 24, "the usage ledger agrees");
});

test("downgrade: the overflow goes to the cheaper model and is marked; what that cannot fit is dead-lettered", async () => {
  provider.reset();
  // $14: four calls at $3, then two at $0.75 on the cheaper model; a third would make $14.25.
  const config = budgetConfig("llm-budget-downgrade", {
    "llm.budget.job.dollars-total": 14,
    "llm.budget.policy": "downgrade",
    "llm.budget.downgrade-to": CHEAP_MODEL,
  });
  const params = eightRecords(config.dir);
  const { result } = await runJob(pipeline, config, params, "downgrade");

  const out = readJsonl<Answered>(params.output);
  assert.equal(out.length, 6);
  assert.equal(out.filter((r) => r.downgraded === null).length, 4);
  const marked = out.filter((r) => r.downgraded !== null);
  assert.equal(marked.length, 2);
  for (const r of marked) assert.equal(r.downgraded, `${CHAT_MODEL}->${CHEAP_MODEL}`);
  assert.equal(result.deadLetters, 2);
  const dead = readJsonl<{ operator: string; error: { message: string } }>(result.deadLetterPath!);
  for (const d of dead) {
    assert.equal(d.operator, "generate");
    assert.equal(
      d.error.message,
      `llm budget exceeded: job ${PIPELINE}/downgrade dollars-total 14: spent 13.5 USD, the generate call to ${CHAT_MODEL} may use 3 USD more; ` +
        `downgraded to ${CHEAP_MODEL}: job ${PIPELINE}/downgrade dollars-total 14: spent 13.5 USD, the generate call to ${CHEAP_MODEL} may use 0.75 USD more`,
    );
  }
  assert.equal(provider.counts().chat, 6, "a refused call reaches no model");
  const { spend, charges } = await ledger(config["data-dir"], "downgrade");
  assert.equal(spend.dollarsTotal, 13.5);
  const byModel = (m: string) => charges.filter((c) => c.model === m);
  assert.deepEqual(
    byModel(CHAT_MODEL).map((c) => c.cost),
    [3, 3, 3, 3],
  );
  assert.deepEqual(
    byModel(CHEAP_MODEL).map((c) => c.cost),
    [0.75, 0.75],
    "the cheaper model is charged at its own price",
  );
  const usage = (await readUsage(config["data-dir"], PIPELINE, "downgrade"))!;
  assert.equal(usage.total.cost, 13.5, "the usage ledger agrees");
  assert.deepEqual(usage.operators.generate!.models.sort(), [CHAT_MODEL, CHEAP_MODEL].sort());
});

test("a tokens-per-minute budget cuts the job's splits by estimated tokens: 3 splits of at most 100 tokens", async () => {
  provider.reset();
  const config = budgetConfig("llm-budget-tokens", { "llm.budget.job.tokens-per-minute": 100, "llm.budget.policy": "pause" });
  // Each line is 42 bytes: 11 tokens for each of the 2 model calls (embed, generate) plus generate's 8 answer tokens = 30; 3 fit 100.
  const params = eightRecords(config.dir);
  // The minute is 1/6 s for this test's worker only: the job is not held up by its budget.
  process.env[WINDOW_DIVISOR_ENV] = "360";
  const { result } = await runJob(pipeline, config, params, "tokens").finally(() => delete process.env[WINDOW_DIVISOR_ENV]);
  assert.equal(result.splitsTotal, 3);
  assert.equal(result.deadLetters, 0);
  assert.equal(readJsonl<Answered>(params.output).length, 8);
  assert.equal(provider.counts().chat, 8);
});
