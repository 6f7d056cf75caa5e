/**
 * The RAG example for real: `sage index` builds the LanceDB index of the shipped corpus through a
 * Temporal job, the pipeline answers a labelled set of questions on the local models (retrieval must
 * return each question's known source first; answers are never checked for wording), the embedding
 * generator makes one request for the micro-batch, a second run is answered from the response cache,
 * and the README's demo command runs end to end.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, runJob, sageCli, testConfig } from "../../test/support/harness.js";
import pipeline, { type RagAnswer } from "./pipeline.js";

const CORPUS = join(REPO, "examples", "rag", "corpus");
const QUESTIONS = join(REPO, "examples", "rag", "questions.jsonl");
const labelled = readJsonl<{ id: number; question: string; expect: string }>(QUESTIONS);

// A child process: the CLI runs below block this process (spawnSync) while they call the models.
let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

const ragConfig = (label: string) => testConfig(label, { "llm.base-url": `${models.url}/v1` });

test("sage index + the RAG pipeline: the known source comes first for every labelled question; one embedding request per batch; a re-run is served from the cache", async () => {
  const config = ragConfig("rag");
  const index = join(config.dir, "index");
  const indexed = sageCli(["index", CORPUS, "--index", index], { env: { ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` } });
  assert.equal(indexed.code, 0, indexed.stderr);
  assert.match(indexed.stdout, /indexed \d+ chunk\(s\) of 8 document\(s\) into .*index \(LanceDB\)/);

  const before = await models.stats();
  const output = join(config.dir, "answers.jsonl");
  const { job, result } = await runJob(pipeline, config, { questions: QUESTIONS, index, output }, "labelled");
  const after = await models.stats();
  assert.equal(result.deadLetters, 0);
  assert.equal(after.embeddings - before.embeddings, 1, "8 questions, one micro-batch, one embedding request");
  assert.equal(after.embeddedInputs - before.embeddedInputs, labelled.length);
  assert.equal(after.chat - before.chat, labelled.length);

  const answers = readJsonl<RagAnswer>(output).sort((a, b) => a.id - b.id);
  assert.equal(answers.length, labelled.length);
  for (const [i, a] of answers.entries()) {
    assert.equal(a.hits[0]!.source, labelled[i]!.expect, `question ${a.id}: "${a.question}"`);
    assert.equal(a.hits.length, 3);
    assert.equal(typeof a.answer, "string");
    assert.ok(a.answer.length > 0, `question ${a.id} got an answer`);
  }
  assert.equal(result.counts["response-sink"]?.out, labelled.length);

  const again = await runJob(pipeline, config, { questions: QUESTIONS, index, output: join(config.dir, "again.jsonl") }, "again");
  assert.deepEqual(await models.stats(), after, "every model answer of the re-run came from the cache");
  assert.deepEqual(readJsonl(again.result.outputs["response-sink"]!), readJsonl(output));

  // `sage rerun --recorded`: the job again, from its recorded answers only, with the cache off.
  const rerun = sageCli(["rerun", job.workflowId, "--recorded", "--module", "examples/rag/pipeline.ts", "--json"], {
    env: { ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1`, SAGE_LLM_CACHE: "false" },
  });
  assert.equal(rerun.code, 0, rerun.stderr);
  const rerunResult = JSON.parse(rerun.stdout.trim().split("\n").pop()!) as { phase: string; recordedFrom: string; outputs: Record<string, string> };
  assert.equal(rerunResult.phase, "done");
  assert.equal(rerunResult.recordedFrom, "rag/labelled");
  assert.deepEqual(await models.stats(), after, "the recorded re-run made no model call");
  assert.deepEqual(readJsonl(rerunResult.outputs["response-sink"]!), readJsonl(output));
});

test("the README's demo command starts what it needs, indexes, answers with sources and prints the Web UI link", () => {
  const config = ragConfig("rag-demo");
  // Exactly the README's first command after `npm ci`: the model install (already done: it keeps the files) and the demo.
  const r = spawnSync("npm", ["run", "--silent", "demo"], {
    cwd: REPO,
    env: { ...process.env, ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` },
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /indexed \d+ chunks of 8 documents/);
  for (const q of labelled) assert.match(r.stdout, new RegExp(`Q${q.id}: .*\\nA: `));
  assert.match(r.stdout, /sources: \S+\.md \(/);
  assert.match(r.stdout, /embedding-generator: 1 request\(s\), 0 from cache, 8 input\(s\)/);
  assert.match(r.stdout, /Web UI: http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/sage%2Frag%2F/);
});
