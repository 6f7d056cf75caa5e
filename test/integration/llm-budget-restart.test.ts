/**
 * `llm.budget` across a restart of the Temporal dev server, against the DETERMINISTIC TEST PROVIDER:
 * a job under policy `pause` (a $12 hour, 10 s long by `WINDOW_DIVISOR_ENV`, at $3 a record) pauses
 * with half its records paid; the dev server stops and starts again on the same database file while
 * the workflow's durable timer runs. The job then resumes and ends with every record answered, each
 * model call made and charged once, and no hour holding more than the budget: the restart neither
 * reset nor doubled the spend. Its own dev server (a shared one cannot be restarted).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { BudgetLedger, type Charge } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, WINDOW_DIVISOR_ENV } from "../../connectors/llm/budget-admission.js";
import { readUsage } from "../../connectors/llm/usage-ledger.js";
import { SageClient } from "../../client/sage-client.js";
import { startDevServer, startScratchServer } from "../../dev/temporal-server.js";
import { progressUntil, readJsonl, startWorker, testConfig, until } from "../support/harness.js";
import { llmOpsPipeline } from "../fixtures/llm-ops.js";

// The hour is 10 s for this file's worker (tests only).
process.env[WINDOW_DIVISOR_ENV] = "360";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const CHAT_MODEL = "smollm2-135m-instruct";

test("pause across a dev server restart: the job resumes after the window, the spend neither reset nor doubled", async () => {
  provider.reset();
  const base = testConfig("llm-budget-restart", {
    "llm.base-url": `${provider.url}/v1`,
    // $1 per prompt token of the chat model ("Q: r0aa bbbb": 3 tokens, $3, its estimate exact).
    "llm.prices": { [CHAT_MODEL]: { input: 1_000_000, output: 0 } },
    "llm.budget.job.dollars-per-hour": 12,
    "llm.budget.policy": "pause",
  });
  const server = await startScratchServer(base.dir);
  const config = { ...base, temporal: { ...base.temporal, address: server.address } };
  const input = join(config.dir, "input.jsonl");
  writeFileSync(input, Array.from({ length: 8 }, (_, id) => JSON.stringify({ id, key: `key ${id}`, text: `r${id}aa bbbb` })).join("\n") + "\n");
  const params = { input, output: join(config.dir, "out.jsonl") };
  const worker = await startWorker(llmOpsPipeline(), config);
  const client = await SageClient.connect({ config });
  let restarted: Awaited<ReturnType<typeof startDevServer>> | null = null;
  try {
    const job = await client.submit(llmOpsPipeline(), { jobId: "restart", params });
    await progressUntil(job, "the pause", (q) => q.llmBudgetPause !== undefined);
    const ledgerPath = budgetLedgerPaths(config["data-dir"], "llm-ops", "restart").job;
    const before = new BudgetLedger(ledgerPath);
    await before.refresh();
    assert.equal(before.spend(Date.now()).dollarsTotal, 12, "half the workload paid before the restart");

    await server.stop();
    restarted = await startDevServer({
      address: server.address,
      uiPort: 0,
      headless: true,
      dbFile: join(base.dir, "temporal.db"),
      logFile: join(base.dir, "temporal.log"),
      startTimeoutMs: 120_000,
    });
    // The client's channel may need a moment after the restart: poll until the job has ended.
    const result = await until("the job's result after the restart", () => job.result(), 120_000);

    assert.equal(result.deadLetters, 0);
    assert.deepEqual(
      readJsonl<{ id: number }>(params.output)
        .map((r) => r.id)
        .sort(),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal(provider.counts().chat, 8, "no record asked twice across the restart");
    const ledger = new BudgetLedger(ledgerPath);
    await ledger.refresh();
    const spend = ledger.spend(Date.now());
    assert.equal(spend.dollarsTotal, 24);
    assert.equal(spend.charges, 8 + 2, "8 chat calls, 2 embedding batches, each charged once");
    // No hour (10 s here) held more than $12: the restart did not reset the spend.
    const paid = readFileSync(ledgerPath, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Charge)
      .filter((c) => c.cost > 0)
      .sort((a, b) => a.at - b.at);
    for (const c of paid) {
      const inHour = paid.filter((d) => d.at <= c.at && d.at > c.at - 10_000).reduce((n, d) => n + d.cost, 0);
      assert.ok(inHour <= 12, `$${inHour} in the hour before ${c.at}`);
    }
    assert.equal((await readUsage(config["data-dir"], "llm-ops", "restart"))!.total.cost, 24, "the usage ledger agrees");
  } finally {
    await client.close();
    await worker.stop();
    await (restarted ?? server).stop();
  }
});
