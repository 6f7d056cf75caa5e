/**
 * Per-record lineage of a routed RAG job over Kafka (`routed-stream-pipeline.ts`, real broker, dev
 * server and local models): every answer on either branch of the router names the offset its
 * question was produced at, and its batch's line a run of the right partition workflow; across a
 * `sage worker` kill -9 mid-stream (continue-as-new: lineage.test.ts). `sage lineage --json` on an answer of each
 * branch names its source, run and, for the RAG branch, the chat call that wrote it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { SageClient } from "../../client/sage-client.js";
import { createLogger } from "../../client/logger.js";
import { kafkaClientOf } from "../../connectors/kafka/index.js";
import { positionOf } from "../../connectors/kafka/records.js";
import { ResponseCache } from "../../connectors/llm/response-cache.js";
import { LINEAGE_HEADER, callsOf, lineageTopicOf, parseLineage, parsePosition, type BatchLineage, type LlmCallLineage } from "../../core/plan/lineage.js";
import { KafkaShim, shimOptionsOf } from "../../streaming/shim.js";
import { StreamJob } from "../../streaming/stream-job.js";
import { REPO, readJsonl, sageCli, startWorkerProcess, until } from "../../test/support/harness.js";
import { createTopics, inSlices, streamCliEnv, streamConfig, streamTopics, testKafka } from "../../test/support/kafka.js";
import pipeline, { branchOf, OFF_TOPIC_ANSWER, type RoutedAnswer } from "./routed-stream-pipeline.js";

const MODULE = join(REPO, "examples", "rag", "routed-stream-pipeline.ts");
const N = 24;

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

test("every answer of a routed RAG job points to its question's offset, across a worker kill -9", async () => {
  const jobId = "rag-routed-lineage";
  const t = streamTopics(jobId);
  const topicsEnv = { RAG_INPUT_TOPIC: t.input, RAG_OUTPUT_TOPIC: t.output, RAG_GROUP: t.group };
  Object.assign(process.env, topicsEnv);
  // Two questions a batch over two partitions: many batches, a worker killed between them.
  const config = streamConfig(jobId, t.dlq, { "execution.parallelism": 2, "kafka.max-batch-records": 2 });
  const env = streamCliEnv(config, { env: { ...topicsEnv, SAGE_LLM_BASE_URL: `${models.url}/v1` } });
  const index = join(config.dir, "index");
  const indexed = sageCli(["index", join(REPO, "examples", "rag", "corpus"), "--index", index], { env });
  assert.equal(indexed.code, 0, indexed.stderr);

  // Every third question is one of the RAG example's (about Sage), the others off-topic.
  const labelled = readJsonl<{ id: number; question: string }>(join(REPO, "examples", "rag", "questions.jsonl"));
  const questions = Array.from({ length: N }, (_, id) => ({
    id,
    question: id % 3 === 0 ? labelled[id / 3]!.question : `Off-topic question ${id}: what is ${id} plus ${id}?`,
  }));
  assert.equal(questions.filter((q) => branchOf(q) === "sage").length, N / 3, "the router's rule splits the questions as planned");
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    questions.map((q) => ({ key: String(q.id), value: JSON.stringify(q) })),
  );
  await producer.close();
  // Where each question sits: the truth the lineage is checked against.
  const where = new Map<number, string>();
  for (const m of await kafka.readAll(t.input))
    where.set((JSON.parse(m.value!.toString()) as { id: number }).id, positionOf(t.input, m.partition, Number(m.offset)));
  assert.equal(where.size, N);

  const client = await SageClient.connect({ config });
  const first = await startWorkerProcess(MODULE, config, client, env);
  const job = StreamJob.create(client, pipeline, { jobId, params: { index } });
  const shim = new KafkaShim(job, kafkaClientOf(config), shimOptionsOf(config), createLogger(config.log.level));
  await shim.start();
  let second: Awaited<ReturnType<typeof startWorkerProcess>> | null = null;
  const answered = async (n: number) => ((await job.progress()).counts["response-sink"]?.out ?? 0) >= n || undefined;
  try {
    await until("a few answers committed", () => answered(6), 240_000);
    first.child.kill("SIGKILL");
    second = await startWorkerProcess(MODULE, config, client, env);
    await until(`${N} answers committed`, () => answered(N), 240_000);
    await job.stop();
    await shim.done;

    const out = await kafka.readAll(t.output);
    const answers = out.map((m) => JSON.parse(m.value!.toString()) as RoutedAnswer);
    assert.deepEqual(
      answers.map((a) => a.id).sort((a, b) => a - b),
      questions.map((q) => q.id),
      "each question answered once",
    );
    const lines = new Map<string, BatchLineage>();
    for (const m of await kafka.readAll(lineageTopicOf(pipeline.name, jobId))) lines.set(m.key!.toString(), JSON.parse(m.value!.toString()) as BatchLineage);

    const wrong: string[] = [];
    const runs = new Map<string, Set<string>>();
    for (const [k, m] of out.entries()) {
      const a = answers[k]!;
      const source = where.get(a.id)!;
      const lineage = parseLineage(m.headers[LINEAGE_HEADER] ?? "");
      const line = lineage ? lines.get(lineage.batch) : undefined;
      const chats = line ? callsOf(line.llm, source).filter((c) => c.at === source) : [];
      if (!lineage || lineage.source !== source || !line || !inSlices(source, line.slices))
        wrong.push(`${a.id}: ${m.headers[LINEAGE_HEADER]} (question at ${source})`);
      else if (line.workflowId !== `sage/${pipeline.name}/${jobId}/p${parsePosition(source)!.partition % 2}`)
        wrong.push(`${a.id}: batch of ${line.workflowId} (question at ${source})`);
      else if (a.branch !== branchOf(questions[a.id]!) || (a.branch === "off-topic") !== (a.answer === OFF_TOPIC_ANSWER))
        wrong.push(`${a.id}: answered on branch ${a.branch} "${a.answer}"`);
      else if (chats.length !== (a.branch === "sage" ? 1 : 0)) wrong.push(`${a.id} (${a.branch}): chat calls ${JSON.stringify(chats)}`);
      else runs.set(line.workflowId, (runs.get(line.workflowId) ?? new Set()).add(line.runId));
    }
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} answers with a wrong or missing lineage`);
    assert.deepEqual([...runs.keys()].sort(), [`sage/${pipeline.name}/${jobId}/p0`, `sage/${pipeline.name}/${jobId}/p1`]);
    // Continue-as-new is not forced here: in two runs with a 20-event budget and a 2 s checkpoint
    // interval the partition workflows still committed every batch in one run (not explained yet).
    // lineage.test.ts checks lineage across continue-as-new on a plain map job.
    for (const [workflowId, ids] of runs)
      for (const runId of ids) assert.equal((await client.temporal.workflow.getHandle(workflowId, runId).describe()).runId, runId);

    // `sage lineage --json` after the job ended, on one answer of each branch.
    const cache = new ResponseCache(config["data-dir"]);
    for (const branch of ["sage", "off-topic"] as const) {
      const k = answers.findIndex((a) => a.branch === branch);
      const a = answers[k]!;
      const ref = positionOf(t.output, out[k]!.partition, Number(out[k]!.offset));
      const cli = sageCli(["lineage", jobId, ref, "--json"], { env });
      assert.equal(cli.code, 0, cli.stderr);
      const printed = JSON.parse(cli.stdout) as { source: string; batch: BatchLineage; llm: LlmCallLineage[] };
      const source = where.get(a.id)!;
      assert.equal(printed.source, source, `${branch} answer ${ref}`);
      assert.equal(printed.batch.workflowId, `sage/${pipeline.name}/${jobId}/p${parsePosition(source)!.partition % 2}`);
      assert.ok(runs.get(printed.batch.workflowId)?.has(printed.batch.runId), `run ${printed.batch.runId} of ${printed.batch.workflowId}`);
      const chats = printed.llm.filter((c) => c.at === source);
      if (branch === "off-topic") {
        assert.deepEqual(chats, [], "the off-topic branch asks no model");
        continue;
      }
      assert.equal(chats.length, 1, JSON.stringify(printed.llm));
      const chat = chats[0]!;
      assert.ok(chat.model.length > 0 && /^[0-9a-f]{16,}$/.test(chat.request), JSON.stringify(chat));
      // The cache key names the chat request the model was asked: about this answer's own question.
      const entry = await cache.get(chat.key ?? chat.request);
      assert.ok(entry, `the response cache holds ${chat.key ?? chat.request}`);
      assert.equal((entry.request as { model: string }).model, chat.model);
      assert.ok(JSON.stringify(entry.request).includes(a.question), JSON.stringify(entry.request));
    }
  } finally {
    await shim.stop();
    await first.stop();
    await second?.stop();
    await client.close();
  }
});
