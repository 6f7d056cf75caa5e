/**
 * The RAG example with its vector store as a registered service (`services-pipeline.ts`) against the
 * built-in `retrieve` pipeline (`pipeline.ts`), on the same index, questions and local models: the
 * same hits and the same answers. The service pipeline runs with a data dir of its own (an empty
 * response cache), so its answers come from the model, not from the first run's cache.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, runJob, sageCli, testConfig } from "../../test/support/harness.js";
import pipeline, { type RagAnswer } from "./pipeline.js";
import servicesPipeline from "./services-pipeline.js";

const CORPUS = join(REPO, "examples", "rag", "corpus");
const QUESTIONS = join(REPO, "examples", "rag", "questions.jsonl");
const labelled = readJsonl<{ id: number; question: string; expect: string }>(QUESTIONS);

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

test("the RAG pipeline with a registered vector-store service gives the built-in pipeline's hits and answers", async () => {
  const builtIn = testConfig("rag-builtin", { "llm.base-url": `${models.url}/v1` });
  const index = join(builtIn.dir, "index");
  const indexed = sageCli(["index", CORPUS, "--index", index], { env: { ...cliEnv(builtIn), SAGE_LLM_BASE_URL: `${models.url}/v1` } });
  assert.equal(indexed.code, 0, indexed.stderr);

  const first = await runJob(pipeline, builtIn, { questions: QUESTIONS, index, output: join(builtIn.dir, "answers.jsonl") }, "builtin");
  assert.equal(first.result.deadLetters, 0);

  const withService = testConfig("rag-services", { "llm.base-url": `${models.url}/v1` });
  const before = await models.stats();
  const second = await runJob(servicesPipeline, withService, { questions: QUESTIONS, index, output: join(withService.dir, "answers.jsonl") }, "services");
  const after = await models.stats();
  assert.equal(second.result.deadLetters, 0);
  assert.equal(after.chat - before.chat, labelled.length, "the service pipeline asked the model itself (its cache was empty)");

  const byId = (path: string) => readJsonl<RagAnswer>(path).sort((a, b) => a.id - b.id);
  const expected = byId(first.result.outputs["response-sink"]!);
  const got = byId(second.result.outputs["response-sink"]!);
  assert.equal(got.length, labelled.length);
  for (const [i, a] of got.entries()) assert.equal(a.hits[0]!.source, labelled[i]!.expect, `question ${a.id}: "${a.question}"`);
  assert.deepEqual(got, expected);
});
