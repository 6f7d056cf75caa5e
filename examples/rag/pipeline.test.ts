/**
 * The RAG example for real: `sage index` builds the LanceDB index of the shipped corpus through a
 * Temporal job, the pipeline answers a labelled set of questions on the local models (retrieval must
 * return each question's known source first; answers are never checked for wording), the embedding
 * generator makes one request for the micro-batch, a second run is answered from the response cache,
 * and the README's demo command runs end to end, its Web UI links loading in the real Web UI.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { freePort } from "../../dev/temporal-server.js";
import { REPO, cliEnv, readJsonl, runJob, sageCli, testConfig, until } from "../../test/support/harness.js";
import pipeline, { type RagAnswer } from "./pipeline.js";
import { PROMPT_SOURCES, sentencesOf } from "./prompt.js";

const CORPUS = join(REPO, "examples", "rag", "corpus");
const QUESTIONS = join(REPO, "examples", "rag", "questions.jsonl");
const labelled = readJsonl<{ id: number; question: string; expect: string }>(QUESTIONS);

// A child process: the CLI runs below block this process (spawnSync) while they call the models.
let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

/** An answer's shape (never its wording): one line of one or two sentences, none of them twice. */
function assertShortAnswer(answer: string, what: string): void {
  assert.ok(!answer.includes("\n"), `${what}: one line: ${JSON.stringify(answer)}`);
  const sentences = sentencesOf(answer);
  assert.ok(sentences.length <= 2, `${what}: at most two sentences: ${JSON.stringify(answer)}`);
  assert.equal(new Set(sentences).size, sentences.length, `${what}: a sentence repeated: ${JSON.stringify(answer)}`);
}

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
    assertShortAnswer(a.answer, `question ${a.id}`);
    assert.equal(a.sources[0], a.hits[0]!.source);
    assert.ok(a.sources.length <= PROMPT_SOURCES);
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

/** The HTTP API call the Web UI's run page makes for `link` (`/namespaces/<ns>/workflows/<id>/<runId>/history`). */
function runPageApi(link: string): { api: URL; runId: string } {
  const page = new URL(link);
  const m = /^\/namespaces\/([^/]+)\/workflows\/([^/]+)\/([^/]+)\/history$/.exec(page.pathname);
  assert.ok(m, `not a link to one run (the UI reads the segment after the workflow id as the run id): ${link}`);
  const api = new URL(`/api/v1/namespaces/${m[1]}/workflows/${m[2]}`, page);
  const runId = decodeURIComponent(m[3]!);
  api.searchParams.set("execution.runId", runId);
  return { api, runId };
}

/** The HTTP API call the Web UI's workflow list makes for `link` (`/namespaces/<ns>/workflows?query=...`). */
function listPageApi(link: string): URL {
  const page = new URL(link);
  const m = /^\/namespaces\/([^/]+)\/workflows$/.exec(page.pathname);
  assert.ok(m && page.searchParams.has("query"), `not a link to a filtered workflow list: ${link}`);
  const api = new URL(`/api/v1/namespaces/${m[1]}/workflows`, page);
  api.searchParams.set("query", page.searchParams.get("query")!);
  return api;
}

/** GETs `url` from the Web UI server, waiting for it to listen (it starts beside the dev server). */
async function getJson(url: URL): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await until(`the Web UI at ${url.origin}`, () => fetch(url).catch(() => undefined));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test("the README's demo command starts what it needs, indexes, answers with sources and prints Web UI links that load the run and the job list", async () => {
  const config = ragConfig("rag-demo");
  // The demo starts its own dev server, with the Web UI a user opens (the test run's server is
  // headless), on free ports; `sage dev --stop` with the same data dir stops it.
  const env = {
    ...cliEnv(config),
    SAGE_LLM_BASE_URL: `${models.url}/v1`,
    SAGE_TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    SAGE_TEMPORAL_UI_PORT: String(await freePort()),
  };
  try {
    // Exactly the README's first command after `npm ci`: the model install (already done: it keeps the files) and the demo.
    const r = spawnSync("npm", ["run", "--silent", "demo"], { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`started Temporal dev server .* on ${env.SAGE_TEMPORAL_ADDRESS}, Web UI http://127\\.0\\.0\\.1:${env.SAGE_TEMPORAL_UI_PORT}`),
    );
    assert.match(r.stderr, /indexed \d+ chunks of 8 documents/);
    // Each answer is printed on one line, between its question and its sources.
    for (const q of labelled) assert.match(r.stdout, new RegExp(`Q${q.id}: .*\\nA: [^\\n]+\\n   sources: \\S+\\.md \\(`));
    assert.match(r.stdout, /embedding-generator: 1 request\(s\), 0 from cache, 8 input\(s\)/);
    assert.match(r.stdout, /llm-generator: 8 request\(s\), 0 from cache, 8 input\(s\), \d+ prompt \+ \d+ completion tokens/);
    const workflowId = /^submitted (sage\/rag\/\S+)$/m.exec(r.stderr)?.[1];
    assert.ok(workflowId, r.stderr);

    // The run link loads the run: the page's own API call answers with this workflow's completed run.
    const run = runPageApi(/^Web UI: (\S+)$/m.exec(r.stdout)?.[1] ?? assert.fail(`no Web UI link in:\n${r.stdout}`));
    const got = await getJson(run.api);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const info = got.body.workflowExecutionInfo as { execution: { workflowId: string; runId: string }; status: string };
    assert.deepEqual(info.execution, { workflowId, runId: run.runId });
    assert.equal(info.status, "WORKFLOW_EXECUTION_STATUS_COMPLETED");

    // The list link lists the pipeline's jobs, this one among them.
    const list = listPageApi(/^jobs of rag in the Web UI: (\S+)$/m.exec(r.stdout)?.[1] ?? assert.fail(`no job list link in:\n${r.stdout}`));
    assert.equal(list.searchParams.get("query"), 'SagePipeline="rag"');
    const first = await getJson(list);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const listed = await until("the demo's job in the Web UI's list", async () => {
      const { body } = await getJson(list);
      const ids = ((body.executions ?? []) as Array<{ execution: { workflowId: string } }>).map((e) => e.execution.workflowId);
      return ids.includes(workflowId) ? ids : undefined;
    });
    assert.ok(
      listed.every((id) => id.startsWith("sage/rag/")),
      listed.join(", "),
    );
  } finally {
    const stop = sageCli(["dev", "--stop"], { env });
    assert.equal(stop.code, 0, stop.stderr);
  }
});
