/**
 * LLM operators on a real worker and dev server against the DETERMINISTIC TEST PROVIDER (exact
 * request counts and injected 429/500/400): embed makes one request per micro-batch; 429 (after its
 * Retry-After) and 500 are retried, 400 is not and the record goes to the dead letters with the
 * reason; a retried stage activity gets earlier answers from the response cache; a re-run job pays
 * nothing; `sage rerun --recorded` makes zero model calls, and a changed prompt in a recorded re-run
 * fails naming the request; `sage status` shows the usage per operator.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import proto from "@temporalio/proto";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { rerunRecorded } from "../../replay/recorded-rerun.js";
import { SageClient } from "../../client/sage-client.js";
import { readUsage } from "../../connectors/llm/usage-ledger.js";
import { cliEnv, readJsonl, runJob, sageCli, startWorker, testConfig } from "../support/harness.js";
import { llmOpsPipeline, type LlmRecord } from "../fixtures/llm-ops.js";
import { definePipeline, FileSink, FileSource, SentenceEmbeddingFunction } from "../../index.js";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

function llmConfig(label: string, overrides: Record<string, unknown> = {}) {
  return testConfig(label, { "llm.base-url": `${provider.url}/v1`, "llm.max-tries": 3, ...overrides });
}

function writeInput(dir: string, texts: string[]): string {
  const path = join(dir, "input.jsonl");
  const records: LlmRecord[] = texts.map((text, id) => ({ id, key: `key ${id}`, text }));
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

interface DeadLetter {
  operator: string;
  attempts: number;
  error: { message: string; code?: string };
  record: { id: number };
}

test("embed: one request per micro-batch; 429 and 500 retried, 400 not: its record is a dead letter with the reason", async () => {
  provider.reset();
  const config = llmConfig("llm-faults");
  const texts = Array.from({ length: 10 }, (_, i) => `hello ${i}`);
  texts[3] = "slow [[429x2]]";
  texts[5] = "flaky [[500x2]]";
  texts[7] = "bad [[400]]";
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(llmOpsPipeline(), config, { input, output }, "faults");

  const c = provider.counts();
  assert.equal(c.embeddings, 3, "10 records in batches of 4: 3 embedding requests");
  assert.equal(c.embeddedInputs, 10);
  assert.equal(c.byText["Q: slow [[429x2]]"], 3, "two 429s, then the answer");
  assert.equal(c.byText["Q: flaky [[500x2]]"], 3, "two 500s, then the answer");
  assert.equal(c.byText["Q: bad [[400]]"], 1, "a 400 is not retried");
  assert.equal(c.byStatus[429], 2);

  const out = readJsonl<{ id: number; answer: string; dims: number }>(output).sort((a, b) => a.id - b.id);
  assert.deepEqual(
    out.map((r) => r.id),
    [0, 1, 2, 3, 4, 5, 6, 8, 9],
  );
  for (const r of out) {
    assert.equal(r.dims, 8);
    assert.equal(r.answer, `echo: Q: ${texts[r.id]!.replace(/\[\[.*\]\]/, "").trim()}`);
  }
  assert.equal(result.deadLetters, 1);
  const dead = readJsonl<DeadLetter>(result.deadLetterPath!);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]!.operator, "generate");
  assert.equal(dead[0]!.record.id, 7);
  assert.equal(dead[0]!.attempts, 1);
  assert.match(dead[0]!.error.message, /HTTP 400/);
  assert.match(dead[0]!.error.message, /operator "generate"/);
});

test("a retried stage activity gets the answers it already had from the response cache", async () => {
  provider.reset();
  // Two tries per activity attempt: the record whose endpoint fails 4 times fails two activity attempts.
  const config = llmConfig("llm-activity-retry", { "llm.max-tries": 2 });
  const texts = ["one", "two", "three", "down [[500x4]]", "five", "six"];
  const input = writeInput(config.dir, texts);
  const output = join(config.dir, "out.jsonl");
  const { job, result } = await runJob(llmOpsPipeline(), config, { input, output }, "activity-retry");
  assert.equal(result.deadLetters, 0);
  assert.equal(readJsonl(output).length, 6);

  const client = await SageClient.connect({ config });
  const history = await client.temporal.workflow.getHandle(job.workflowId).fetchHistory();
  await client.close();
  const attempts = (history.events ?? [])
    .filter((e) => e.eventType === proto.temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    .map((e) => e.activityTaskStartedEventAttributes?.attempt ?? 1);
  assert.equal(Math.max(...attempts), 3, "the stage activity ran three times");

  const c = provider.counts();
  assert.equal(c.byText["Q: down [[500x4]]"], 5, "4 failures then the answer");
  for (const t of ["one", "two", "three", "five", "six"]) assert.equal(c.byText[`Q: ${t}`], 1, `"${t}" was asked once in three activity attempts`);
  assert.equal(c.embeddings, 2, "6 records in batches of 4, asked once");
  const usage = await readUsage(config["data-dir"], "llm-ops", "activity-retry");
  assert.ok(usage && usage.operators.generate!.cached >= 6, "later attempts were answered from the cache");
});

test("a re-run job pays nothing; --recorded makes zero model calls; a changed prompt fails naming the request; status shows usage", async () => {
  provider.reset();
  const config = llmConfig("llm-recorded", { "llm.prices": { "smollm2-135m-instruct": { input: 1, output: 2 } } });
  const texts = ["alpha", "beta", "gamma", "delta", "epsilon"];
  const input = writeInput(config.dir, texts);
  const first = await runJob(llmOpsPipeline(), config, { input, output: join(config.dir, "first.jsonl") }, "first");
  const paid = provider.counts().requests;
  assert.equal(paid, 2 + 5, "2 embedding batches, 5 chats");

  provider.reset();
  await runJob(llmOpsPipeline(), config, { input, output: join(config.dir, "again.jsonl") }, "again");
  assert.equal(provider.counts().requests, 0, "every answer of the same job came from the cache");
  assert.deepEqual(readJsonl(join(config.dir, "again.jsonl")), readJsonl(first.result.outputs.out!));

  // Recorded re-run, with the cache switched off so only the record can answer.
  const recordedConfig = { ...config, llm: { ...config.llm, cache: false } };
  const w = await startWorker(llmOpsPipeline(), recordedConfig);
  const client = await SageClient.connect({ config: recordedConfig });
  try {
    const { job, from } = await rerunRecorded(client, first.job.workflowId);
    assert.equal(from, "llm-ops/first");
    const result = await job.result();
    assert.equal(provider.counts().requests, 0, "a recorded re-run calls no model");
    assert.deepEqual(readJsonl(result.outputs.out!), readJsonl(first.result.outputs.out!));
  } finally {
    await client.close();
    await w.stop();
  }

  const changed = llmOpsPipeline("Question: {{text}}");
  const w2 = await startWorker(changed, recordedConfig);
  const client2 = await SageClient.connect({ config: recordedConfig });
  try {
    const { job } = await rerunRecorded(client2, first.job.workflowId, { pipeline: changed });
    await assert.rejects(job.result(), (err: Error) => {
      assert.match(err.message, /recorded re-run: operator "generate" made a chat request/);
      assert.match(err.message, /Question: alpha|Question: /);
      assert.match(err.message, /never made/);
      return true;
    });
    assert.equal(provider.counts().requests, 0);
  } finally {
    await client2.close();
    await w2.stop();
  }

  const status = sageCli(["status", first.job.workflowId], { env: cliEnv(config) });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /model usage/);
  assert.match(status.stdout, /embed: 2 model request\(s\) \(0 from cache\), 5 input\(s\)/);
  assert.match(status.stdout, /generate: 5 model request\(s\) \(0 from cache\)/);
  const usage = await readUsage(config["data-dir"], "llm-ops", "first");
  assert.ok(usage!.total.cost > 0, "a priced model has an estimated cost");
});

test("a micro-batch the endpoint refuses (400) is retried record by record: only the bad record is a dead letter", async () => {
  provider.reset();
  const config = llmConfig("llm-batch-fallback");
  const input = join(config.dir, "input.jsonl");
  const keys = ["k0", "k1", "bad key [[400]]", "k3"];
  writeFileSync(input, keys.map((key, id) => JSON.stringify({ id, key, text: `t${id}` })).join("\n") + "\n");
  const output = join(config.dir, "out.jsonl");
  const { result } = await runJob(llmOpsPipeline(), config, { input, output }, "fallback");
  const c = provider.counts();
  assert.equal(c.embeddings, 5, "the batch of 4 (refused), then one request per record");
  assert.deepEqual(
    readJsonl<{ id: number }>(output)
      .map((r) => r.id)
      .sort(),
    [0, 1, 3],
  );
  const dead = readJsonl<DeadLetter>(result.deadLetterPath!);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]!.operator, "embed");
  assert.equal(dead[0]!.record.id, 2);
  assert.match(dead[0]!.error.message, /HTTP 400/);
});

test("SentenceEmbeddingFunction: the model is opened in open(), used per micro-batch in the worker, released in close()", async () => {
  const fn = new SentenceEmbeddingFunction<{ id: number; text: string }>((r) => r.text);
  const embedPipeline = definePipeline("sentence-embedding", (env) =>
    env
      .fromSource(FileSource.jsonl<{ id: number; text: string }>(env.param("input")), { name: "sentences" })
      .mapBatch(fn, { name: "sentence-embedding", batchSize: 8 })
      .map((r) => ({ id: r.id, dims: r.embedding.length, norm: Math.sqrt(r.embedding.reduce((s, x) => s + x * x, 0)) }), { name: "measure" })
      .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
  );
  const config = testConfig("sentence-embedding");
  const input = join(config.dir, "in.jsonl");
  writeFileSync(input, Array.from({ length: 10 }, (_, id) => JSON.stringify({ id, text: `sentence number ${id}` })).join("\n") + "\n");
  const output = join(config.dir, "out.jsonl");
  assert.equal(fn.isOpen, false);
  const { result } = await runJob(embedPipeline, config, { input, output }, "sentences");
  assert.equal(result.counts["sentence-embedding"]?.out, 10);
  for (const r of readJsonl<{ dims: number; norm: number }>(output)) {
    assert.equal(r.dims, 384);
    assert.ok(Math.abs(r.norm - 1) < 1e-3);
  }
  assert.equal(fn.isOpen, false, "the worker's shutdown closed the function and released the model");
});
