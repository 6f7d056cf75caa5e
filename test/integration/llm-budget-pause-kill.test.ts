/**
 * `llm.budget` policy `pause` across a worker killed with SIGKILL, on a real dev server against the
 * DETERMINISTIC TEST PROVIDER: the job pauses with half its records paid (a $12 hour, 10 s long by
 * `WINDOW_DIVISOR_ENV`, at $3 a record), the worker dies while the workflow's durable timer runs, and
 * the next worker resumes the unit when it fires: every record answered, each model call made and
 * charged once.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { BudgetLedger } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, WINDOW_DIVISOR_ENV } from "../../connectors/llm/budget-admission.js";
import { SageClient } from "../../client/sage-client.js";
import { cliEnv, progressUntil, readJsonl, startWorkerProcess, testConfig } from "../support/harness.js";
import { llmOpsPipeline } from "../fixtures/llm-ops.js";

// The hour is 10 s for this file's worker processes (they inherit the environment; tests only).
process.env[WINDOW_DIVISOR_ENV] = "360";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const CHAT_MODEL = "smollm2-135m-instruct";

test("pause: a worker killed with SIGKILL while the job waits; the next one resumes it after the window, the totals exact", async () => {
  provider.reset();
  const config = testConfig("llm-budget-pause-kill");
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
      "    job: { dollars-per-hour: 12 }",
      "    policy: pause",
      "",
    ].join("\n"),
  );
  const input = join(config.dir, "input.jsonl");
  writeFileSync(input, Array.from({ length: 8 }, (_, id) => JSON.stringify({ id, key: `key ${id}`, text: `r${id}aa bbbb` })).join("\n") + "\n");
  const params = { input, output: join(config.dir, "out.jsonl") };
  const client = await SageClient.connect({ config });
  const start = () => startWorkerProcess("test/fixtures/llm-ops.ts", config, client, cliEnv(config), ["--config", configFile]);
  const workers = [await start()];
  try {
    const job = await client.submit(llmOpsPipeline(), { jobId: "pause-kill", params });
    await progressUntil(job, "the pause", (q) => q.llmBudgetPause !== undefined);
    workers[0]!.child.kill("SIGKILL");
    workers.push(await start());
    const result = await job.result();
    assert.equal(result.deadLetters, 0);
    assert.equal(readJsonl(params.output).length, 8);
    assert.equal(provider.counts().chat, 8, "no record asked twice across the kill");
    const l = new BudgetLedger(budgetLedgerPaths(config["data-dir"], "llm-ops", "pause-kill").job);
    await l.refresh();
    const spend = l.spend(Date.now());
    assert.equal(spend.dollarsTotal, 24);
    assert.equal(spend.charges, 8 + 2);
  } finally {
    for (const w of workers) await w.stop();
    await client.close();
  }
});
