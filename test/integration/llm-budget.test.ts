/**
 * `llm.budget` on a real worker and dev server against the DETERMINISTIC TEST PROVIDER (exact
 * tokens): a job budget that allows half the workload sends the other half to the dead letters with
 * "llm budget exceeded: ..." and never calls the model for them; the durable ledger's total equals
 * the usage ledger's cost; a retried stage activity is charged once; a worker killed with SIGKILL
 * in the middle of a model call does not reset the spend.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { readUsage } from "../../connectors/llm/usage-ledger.js";
import { BudgetLedger } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths } from "../../connectors/llm/budget-admission.js";
import { cliEnv, readJsonl, runJob, startWorkerProcess, testConfig, until } from "../support/harness.js";
import { SageClient } from "../../client/sage-client.js";
import { llmOpsPipeline, type LlmRecord } from "../fixtures/llm-ops.js";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const CHAT_MODEL = "smollm2-135m-instruct";

function budgetConfig(label: string, overrides: Record<string, unknown>) {
  // $1 per prompt token of the chat model, nothing for its answer or for embeddings.
  return testConfig(label, {
    "llm.base-url": `${provider.url}/v1`,
    "llm.prices": { [CHAT_MODEL]: { input: 1_000_000, output: 0 } },
    ...overrides,
  });
}

function writeInput(dir: string, texts: string[]): string {
  const path = join(dir, "input.jsonl");
  const records: LlmRecord[] = texts.map((text, id) => ({ id, key: `key ${id}`, text }));
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

async function ledgerSpend(dataDir: string, jobId: string) {
  const ledger = new BudgetLedger(budgetLedgerPaths(dataDir, "llm-ops", jobId).job);
  await ledger.refresh();
  return ledger.spend(Date.now());
}

test("a budget for half the workload: half answered, half dead-lettered with the reason, the ledger exact", async () => {
  provider.reset();
  const config = budgetConfig("llm-budget-half", { "llm.budget.job.dollars-total": 12 });
  // "Q: r0aa bbbb": 12 characters, 3 prompt tokens at the provider: the estimate (4 characters per token) is exact, $3 a call.
  const texts = Array.from({ length: 8 }, (_, i) => `r${i}aa bbbb`);
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(llmOpsPipeline(), config, { input, output }, "budget");

  assert.equal(readJsonl(output).length, 4);
  assert.equal(result.deadLetters, 4);
  const dead = readJsonl<{ operator: string; error: { message: string } }>(result.deadLetterPath!);
  for (const d of dead) {
    assert.equal(d.operator, "generate");
    assert.match(
      d.error.message,
      /^llm budget exceeded: job llm-ops\/budget dollars-total 12: spent 12 USD, the generate call to smollm2-135m-instruct may use 3 USD more/,
    );
  }
  assert.equal(provider.counts().chat, 4, "a refused call never reaches the model");
  const spend = await ledgerSpend(config["data-dir"], "budget");
  const usage = await readUsage(config["data-dir"], "llm-ops", "budget");
  assert.equal(spend.dollarsTotal, 12);
  assert.equal(spend.charges, 4 + 2, "4 chat calls, 2 embedding batches (no price: tokens only)");
  assert.equal(usage!.total.cost, 12, "the usage ledger agrees");
});

test("a retried stage activity is charged once: the ledger equals the paid usage", async () => {
  provider.reset();
  // Two tries per activity attempt: the record whose endpoint fails 4 times fails two activity attempts.
  const config = budgetConfig("llm-budget-retry", { "llm.max-tries": 2, "llm.budget.job.dollars-total": 1_000 });
  const texts = ["one", "two", "three", "down [[500x4]]", "five", "six"];
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(llmOpsPipeline(), config, { input, output }, "budget-retry");
  assert.equal(result.deadLetters, 0);
  assert.equal(readJsonl(output).length, 6);
  const c = provider.counts();
  assert.equal(c.byText["Q: down [[500x4]]"], 5, "4 failures then the answer");
  const spend = await ledgerSpend(config["data-dir"], "budget-retry");
  const usage = await readUsage(config["data-dir"], "llm-ops", "budget-retry");
  // Prompt tokens are the words of "Q: <text>": 2 each, 3 for "Q: down [[500x4]]".
  assert.equal(spend.charges, 6 + 2, "one charge per chat record and per embedding batch, however many attempts");
  assert.equal(spend.dollarsTotal, 13);
  assert.equal(usage!.total.cost, 13);
});

test("without the response cache a retried activity calls the model again, and the ledger still charges each request once", async () => {
  provider.reset();
  const config = budgetConfig("llm-budget-nocache", { "llm.max-tries": 2, "llm.cache": false, "llm.budget.job.dollars-total": 1_000 });
  const texts = ["one", "two", "three", "down [[500x4]]", "five", "six"];
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(llmOpsPipeline(), config, { input, output }, "budget-nocache");
  assert.equal(result.deadLetters, 0);
  const c = provider.counts();
  assert.equal(c.byText["Q: one"], 3, "asked again in each of the three activity attempts");
  const spend = await ledgerSpend(config["data-dir"], "budget-nocache");
  assert.equal(spend.charges, 6 + 2);
  assert.equal(spend.dollarsTotal, 13, "charged once per request");
});

test("a worker killed with SIGKILL during a model call: the next worker keeps the spend, nothing is counted twice", async () => {
  provider.reset();
  const config = budgetConfig("llm-budget-kill", { "llm.budget.job.dollars-total": 13 });
  // The worker child reads prices and the budget from a config file (no environment variable carries a record).
  const configFile = join(config.dir, "sage.config.yaml");
  writeFileSync(
    configFile,
    [
      "llm:",
      `  base-url: ${provider.url}/v1`,
      "  prices:",
      `    ${CHAT_MODEL}: { input: 1000000, output: 0 }`,
      "  budget:",
      "    job: { dollars-total: 13 }",
      "",
    ].join("\n"),
  );
  // Record 2's answer takes 3 s: the worker is killed while it is asked, records 0 and 1 paid ($3 each).
  // Its worst case is $7 (27 characters at 4 per token): $13 lets it in after them.
  const texts = Array.from({ length: 8 }, (_, i) => `r${i}aa bbbb${i === 2 ? " [[delay=3000]]" : ""}`);
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const client = await SageClient.connect({ config });
  const workers = [await startWorkerProcess("test/fixtures/llm-ops.ts", config, client, cliEnv(config), ["--config", configFile])];
  try {
    const job = await client.submit(llmOpsPipeline(), { jobId: "budget-kill", params: { input, output } });
    await until("record 2 to be asked", async () => ((provider.counts().byText[`Q: ${texts[2]}`] ?? 0) >= 1 ? true : undefined));
    await until("records 0 and 1 to be charged", async () => ((await ledgerSpend(config["data-dir"], "budget-kill")).dollarsTotal >= 6 ? true : undefined));
    workers[0]!.child.kill("SIGKILL");
    assert.equal((await ledgerSpend(config["data-dir"], "budget-kill")).dollarsTotal, 6, "spent before the kill");
    workers.push(await startWorkerProcess("test/fixtures/llm-ops.ts", config, client, cliEnv(config), ["--config", configFile]));
    const result = await job.result();

    const out = readJsonl<{ id: number }>(output);
    const dead = readJsonl<{ error: { message: string } }>(result.deadLetterPath!);
    assert.equal(out.length + dead.length, 8);
    for (const d of dead) assert.match(d.error.message, /^llm budget exceeded: job llm-ops\/budget-kill dollars-total 13: /);
    // $1 per prompt word: 4 for record 2, 3 for each other.
    const paid = out.reduce((n, r) => n + (r.id === 2 ? 4 : 3), 0);
    const spend = await ledgerSpend(config["data-dir"], "budget-kill");
    assert.equal(spend.dollarsTotal, paid, "the ledger holds exactly the answered records, each once");
    assert.ok(spend.dollarsTotal <= 13, `spent ${spend.dollarsTotal} of 13: the second worker knew the first one's spend`);
    assert.ok(
      [0, 1].every((id) => out.some((r) => r.id === id)),
      "the records paid before the kill are answered (from the response cache) after it",
    );
  } finally {
    for (const w of workers) await w.stop();
    await client.close();
  }
});
