/**
 * `llm.budget` policy `pause` in a streaming job (Kafka in, Kafka out, stages as local activities)
 * against the DETERMINISTIC TEST PROVIDER. The partition workflow does not wait on its own timer
 * (only bounded jobs do): the stage's `LLM_BUDGET_PAUSED` failure is retried by Temporal after the
 * delay it names, while the workflow holds the batch. A $12 hour (10 s by `WINDOW_DIVISOR_ENV`) at $3
 * a record, for 8 records: every record comes out, each model call is made and charged once.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { BudgetLedger } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, WINDOW_DIVISOR_ENV } from "../../connectors/llm/budget-admission.js";
import { createTopics, runStreaming, streamConfig, streamTopics, testKafka, waitForRecords } from "../support/kafka.js";

// The hour is 10 s for this file's workers (tests only).
process.env[WINDOW_DIVISOR_ENV] = "360";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const CHAT_MODEL = "smollm2-135m-instruct";

test("pause in a streaming job: the unit is retried after the window; 8 answers, 8 calls, $24", async () => {
  provider.reset();
  const t = streamTopics("llm-budget-stream");
  const config = streamConfig("llm-budget-stream", t.dlq, {
    "llm.base-url": `${provider.url}/v1`,
    "llm.prices": { [CHAT_MODEL]: { input: 1_000_000, output: 0 } },
    "llm.budget.job.dollars-per-hour": 12,
    "llm.budget.policy": "pause",
    "execution.parallelism": 1,
  });
  const pipeline = definePipeline("llm-budget-stream", (env) =>
    env
      .fromSource(KafkaSource.topic<{ id: number; text: string }>(t.input, { groupId: t.group }), { name: "in" })
      .prompt("Q: {{text}}", { name: "prompt" })
      .generate({ maxTokens: 8, name: "generate" })
      .map((r) => ({ id: r.id, answer: r.answer }), { name: "format" })
      .sink(KafkaSink.topic<{ id: number; answer: string }>(t.output), { name: "out" }),
  );
  const kafka = testKafka();
  await createTopics(kafka, t, 1);
  const producer = await kafka.producer();
  // "Q: r0aa bbbb": 3 prompt tokens, $3, its estimate exact.
  await producer.send(
    t.input,
    Array.from({ length: 8 }, (_, id) => ({ key: `k${id}`, value: JSON.stringify({ id, text: `r${id}aa bbbb` }) })),
  );
  await producer.close();
  const run = await runStreaming(pipeline, config, "stream");
  try {
    const p = await waitForRecords(run.job, 8, 90_000);
    assert.equal(p.deadLetters, 0);
    await run.job.stop();
    await run.shim.done;
    const out = (await kafka.readAll(t.output)).map((m) => (JSON.parse(m.value!.toString()) as { id: number }).id).sort();
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(provider.counts().chat, 8, "each record asked once: a paused unit's answered records come from the cache");
    const ledger = new BudgetLedger(budgetLedgerPaths(config["data-dir"], "llm-budget-stream", "stream").job);
    await ledger.refresh();
    const spend = ledger.spend(Date.now());
    assert.equal(spend.dollarsTotal, 24);
    assert.equal(spend.charges, 8);
  } finally {
    await run.close();
  }
});
