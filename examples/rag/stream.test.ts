/**
 * The RAG chain fed from Kafka (`stream-pipeline.ts`) through `sage run` until `sage stop`: questions
 * produced to a topic come out as answers on another, once each, and retrieval still puts each
 * question's known source first. Real broker, real dev server, real local models.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, sageCli, sageCliBackground, testConfig, until } from "../../test/support/harness.js";
import { streamTopics, testBrokers, testKafka } from "../../test/support/kafka.js";
import type { RagAnswer } from "./pipeline.js";

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

test("sage run examples/rag/stream-pipeline.ts answers questions from a Kafka topic, once each, known source first", async () => {
  const config = testConfig("rag-stream");
  const t = streamTopics("rag-stream");
  const env = {
    ...cliEnv(config),
    SAGE_LLM_BASE_URL: `${models.url}/v1`,
    SAGE_KAFKA_BROKERS: testBrokers(),
    SAGE_KAFKA_DEAD_LETTER_TOPIC: t.dlq,
    RAG_INPUT_TOPIC: t.input,
    RAG_OUTPUT_TOPIC: t.output,
    RAG_GROUP: t.group,
  };
  const index = join(config.dir, "index");
  const indexed = sageCli(["index", join(REPO, "examples", "rag", "corpus"), "--index", index], { env });
  assert.equal(indexed.code, 0, indexed.stderr);

  const labelled = readJsonl<{ id: number; question: string; expect: string }>(join(REPO, "examples", "rag", "questions.jsonl")).filter((q) => q.id % 2 === 1);
  const kafka = testKafka();
  const admin = await kafka.admin();
  await admin.ensureTopic(t.input, 1);
  await admin.ensureTopic(t.output, 1);
  await admin.close();
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    labelled.map((q) => ({ key: String(q.id), value: JSON.stringify({ id: q.id, question: q.question }) })),
  );
  await producer.close();

  const run = sageCliBackground(["run", "examples/rag/stream-pipeline.ts", "--job-id", "rag-stream", "--param", `index=${index}`, "--json"], { env });
  let stderr = "";
  run.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(run, "exit");
  try {
    const out = await until(
      "every question answered on the output topic",
      async () => {
        const msgs = await kafka.readAll(t.output);
        return msgs.length >= labelled.length ? msgs : undefined;
      },
      240_000,
    );
    const stop = sageCli(["stop", "rag-stream"], { env });
    assert.equal(stop.code, 0, stop.stderr);
    const [code] = (await exited) as [number];
    assert.equal(code, 0, stderr);
    const answers = (await kafka.readAll(t.output)).map((m) => JSON.parse(m.value!.toString()) as RagAnswer);
    assert.equal(answers.length, labelled.length, "each question answered exactly once");
    assert.equal(out.length, labelled.length);
    for (const q of labelled) {
      const a = answers.find((x) => x.id === q.id);
      assert.ok(a, `question ${q.id} answered`);
      assert.equal(a.hits[0]!.source, q.expect, `question ${q.id}: "${q.question}"`);
      assert.ok(a.answer.length > 0);
    }
  } finally {
    if (run.exitCode === null) run.kill("SIGKILL");
  }
});
