/**
 * `llm.budget` policy `pause` in a streaming job (Kafka in, Kafka out) against the DETERMINISTIC
 * TEST PROVIDER. The partition workflow does not wait on a timer of its own: the stage's
 * `LLM_BUDGET_PAUSED` failure is retried by Temporal after the delay it names, while the workflow
 * holds the batch. The worker tells the workflow by signal: its progress (`sage status`) shows the
 * pause, and the shim stops fetching its partition until then. A $12 hour (10 s by
 * `WINDOW_DIVISOR_ENV`) at $3 a record: every record comes out, each model call is made and charged once.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { BudgetLedger } from "../../connectors/llm/budget-ledger.js";
import { budgetLedgerPaths, WINDOW_DIVISOR_ENV } from "../../connectors/llm/budget-admission.js";
import { createTopics, runStreaming, streamConfig, streamTopics, testKafka, waitForRecords } from "../support/kafka.js";
import { until } from "../support/harness.js";
import { renderStreamProgress } from "../../cli/stream.js";

// The hour is 10 s for this file's workers (tests only).
process.env[WINDOW_DIVISOR_ENV] = "360";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const CHAT_MODEL = "smollm2-135m-instruct";

type Topics = ReturnType<typeof streamTopics>;

/** A $12 hour at $3 a record ("Q: r0aa bbbb": 3 prompt tokens, its estimate exact), one partition workflow. */
function budgetConfig(label: string, t: Topics, overrides: Record<string, unknown> = {}) {
  return streamConfig(label, t.dlq, {
    "llm.base-url": `${provider.url}/v1`,
    "llm.prices": { [CHAT_MODEL]: { input: 1_000_000, output: 0 } },
    "llm.budget.job.dollars-per-hour": 12,
    "llm.budget.policy": "pause",
    "execution.parallelism": 1,
    ...overrides,
  });
}

const pipelineOf = (t: Topics) =>
  definePipeline("llm-budget-stream", (env) =>
    env
      .fromSource(KafkaSource.topic<{ id: number; text: string }>(t.input, { groupId: t.group }), { name: "in" })
      .prompt("Q: {{text}}", { name: "prompt" })
      .generate({ maxTokens: 8, name: "generate" })
      .map((r) => ({ id: r.id, answer: r.answer }), { name: "format" })
      .sink(KafkaSink.topic<{ id: number; answer: string }>(t.output), { name: "out" }),
  );

/** Writes records `from` up to `to` (exclusive) to the input topic. */
async function produce(kafka: ReturnType<typeof testKafka>, t: Topics, from: number, to: number): Promise<void> {
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    Array.from({ length: to - from }, (_, i) => ({ key: `k${from + i}`, value: JSON.stringify({ id: from + i, text: `r${from + i}aa bbbb` }) })),
  );
  await producer.close();
}

test("pause in a streaming job: the unit is retried after the window; 8 answers, 8 calls, $24", async () => {
  provider.reset();
  const t = streamTopics("llm-budget-stream");
  const config = budgetConfig("llm-budget-stream", t);
  const kafka = testKafka();
  await createTopics(kafka, t, 1);
  await produce(kafka, t, 0, 8);
  const run = await runStreaming(pipelineOf(t), config, "stream");
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

test("a streaming job's pause shows in its progress and status, and its shim stops fetching until it ends", async () => {
  provider.reset();
  const t = streamTopics("llm-budget-stream-shown");
  // As activities, the stage's retry waits on the server: the workflow answers queries and signals meanwhile.
  const config = budgetConfig("llm-budget-stream-shown", t, { "kafka.local-activities": false });
  const kafka = testKafka();
  await createTopics(kafka, t, 1);
  await produce(kafka, t, 0, 8);
  const run = await runStreaming(pipelineOf(t), config, "shown");
  try {
    // As the shim saw it (its last progress query): it pauses the fetch from then on.
    const paused = await until("the pause in the workflow's progress", async () => {
      const p = run.shim.progress();
      return p.workflows[0]?.llmBudgetPause ? p : undefined;
    });
    const pause = paused.workflows[0]!.llmBudgetPause!;
    assert.equal(pause.reason, `job llm-budget-stream/shown dollars-per-hour 12: spent 12 USD, the generate call to ${CHAT_MODEL} may use 3 USD more`);
    assert.ok(Date.parse(pause.until) > Date.now() - 10_000, `until ${pause.until}`);
    assert.ok(renderStreamProgress(paused).includes(`paused by llm budget until ${pause.until}: ${pause.reason}`), renderStreamProgress(paused));
    assert.equal(provider.counts().chat, 4, "the call that would cross the budget was not made");

    // Records that arrive during the pause stay in Kafka until it ends.
    await produce(kafka, t, 8, 12);
    const delivered = await until("the shim to pause the partition for the budget", async () =>
      run.shim.stats.budgetPauses > 0 ? run.shim.stats.records : undefined,
    );
    assert.equal(delivered, 8, "nothing delivered while the workflow waits for the budget");

    const p = await waitForRecords(run.job, 12, 90_000);
    assert.equal(p.deadLetters, 0);
    assert.equal(p.workflows[0]?.llmBudgetPause, undefined, "the pause is over");
    await run.job.stop();
    await run.shim.done;
    const out = (await kafka.readAll(t.output)).map((m) => (JSON.parse(m.value!.toString()) as { id: number }).id).sort((a, b) => a - b);
    assert.deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(provider.counts().chat, 12);
    const ledger = new BudgetLedger(budgetLedgerPaths(config["data-dir"], "llm-budget-stream", "shown").job);
    await ledger.refresh();
    const spend = ledger.spend(Date.now());
    assert.equal(spend.dollarsTotal, 36);
    assert.equal(spend.charges, 12);
  } finally {
    await run.close();
  }
});
