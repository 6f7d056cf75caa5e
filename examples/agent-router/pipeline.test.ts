/**
 * The agent router on the real local models: `sage run` over a labelled set of 30 messages (none
 * of them among the classifier's examples) must send at least 90% to the right branch; the question
 * branch answers from the RAG corpus index and the conversation branch from the chat model (one
 * chat request per message, short answers; never their wording); the command branch runs exactly
 * the whitelisted commands, for real, and answers the others without running anything. The client
 * script runs it too; `sage plan` shows everything fused into one stage.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, sageCli, testConfig } from "../../test/support/harness.js";
import { sentencesOf } from "../rag/prompt.js";
import { commandFor, DENIED } from "./commands.js";
import type { Answer } from "./pipeline.js";

const LABELLED = join(REPO, "examples", "agent-router", "labelled.jsonl");
const MESSAGES = join(REPO, "examples", "agent-router", "messages.jsonl");
const CORPUS = join(REPO, "examples", "rag", "corpus");
const BRANCH = { question: "qa", command: "cmd", conversation: "chat" } as const;

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

/** Checks every answer of a run by its branch; `texts` gives each message's text by id. */
function checkAnswers(answers: Answer[], texts: Map<number, string>): void {
  const documents = readdirSync(CORPUS);
  for (const a of answers) {
    const what = `answer ${a.id} (${a.branch}) to "${texts.get(a.id)}"`;
    assert.ok(a.reply.trim().length > 0, `${what}: empty reply`);
    if (a.branch === "cmd") {
      const command = commandFor(texts.get(a.id)!);
      assert.equal(a.command?.name, command?.name, `${what}: ran ${a.command?.name ?? "nothing"}`);
      if (a.command) {
        assert.deepEqual(a.command.argv, command!.argv);
        assert.equal(a.command.exitCode, 0, `${what}: ${a.command.output}`);
        assert.ok(a.command.output.length > 0, `${what}: no output`);
      }
      continue;
    }
    // The model's replies: one line of one or two sentences, none twice (the wording is the model's).
    assert.ok(!a.reply.includes("\n"), `${what}: one line: ${JSON.stringify(a.reply)}`);
    const sentences = sentencesOf(a.reply);
    assert.ok(sentences.length <= 2, `${what}: at most two sentences: ${JSON.stringify(a.reply)}`);
    assert.equal(new Set(sentences).size, sentences.length, `${what}: a sentence repeated: ${JSON.stringify(a.reply)}`);
    if (a.branch === "qa") {
      assert.ok(a.sources && a.sources.length > 0, `${what}: no sources`);
      for (const s of a.sources) assert.ok(documents.includes(s), `${what}: source ${s} is not in the corpus`);
    } else assert.equal(a.sources, undefined);
  }
}

test("routes at least 27 of 30 labelled messages right; questions answered from the corpus, chat by the model, whitelisted commands run", async () => {
  const config = testConfig("agent-router-labelled");
  const env = { ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` };
  const index = join(config.dir, "index");
  const indexed = sageCli(["index", CORPUS, "--index", index], { env });
  assert.equal(indexed.code, 0, indexed.stderr);

  const output = join(config.dir, "answers.jsonl");
  const before = await models.stats();
  const r = sageCli(
    ["run", "examples/agent-router/pipeline.ts", "--param", `input=${LABELLED}`, "--param", `index=${index}`, "--param", `output=${output}`, "--json"],
    {
      env,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const after = await models.stats();

  const labelled = readJsonl<{ id: number; text: string; intent: keyof typeof BRANCH }>(LABELLED);
  const answers = readJsonl<Answer>(output);
  assert.equal(answers.length, 30, "every message answered once (none trips the safety filter)");
  assert.equal(new Set(answers.map((a) => a.id)).size, 30);
  const wrong = labelled.filter((m) => answers.find((a) => a.id === m.id)!.branch !== BRANCH[m.intent]);
  assert.ok(wrong.length <= 3, `misrouted ${wrong.length} of 30: ${wrong.map((m) => m.text).join(" | ")}`);
  for (const a of answers) assert.ok(a.score > 0 && a.score <= 1.0001, `score ${a.score}`);
  checkAnswers(answers, new Map(labelled.map((m) => [m.id, m.text])));

  const count = (b: string) => answers.filter((a) => a.branch === b).length;
  assert.equal(after.chat - before.chat, count("qa") + count("chat"), "one chat request per question and per conversation message");
  assert.equal(
    after.embeddings - before.embeddings,
    3,
    "one request for the labelled examples, one for the batch of 30 messages, one for the batch of questions",
  );
  // The labelled commands a whitelist rule matches ran for real.
  const runnable = labelled.filter((m) => m.intent === "command" && commandFor(m.text));
  assert.ok(runnable.length > 0);
  for (const m of runnable) assert.equal(answers.find((a) => a.id === m.id)?.command?.exitCode, 0, m.text);
});

test("examples/agent-router/client.ts indexes the corpus and runs the example from a client script", () => {
  const config = testConfig("agent-router-client");
  const output = join(config.dir, "answers.jsonl");
  const r = spawnSync(process.execPath, ["--import", "tsx", "examples/agent-router/client.ts", MESSAGES, output, join(config.dir, "index")], {
    cwd: REPO,
    env: { ...process.env, ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` },
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /indexed \d+ chunks of 8 documents/);
  const messages = readJsonl<{ id: number; text: string }>(MESSAGES);
  const answers = readJsonl<Answer>(output);
  const ids = answers.map((a) => a.id);
  assert.equal(new Set(ids).size, ids.length, "no message answered twice");
  // The one destructive command is dropped by the safety check if it is routed as a command.
  const denied = messages.filter((m) => DENIED.test(m.text));
  assert.equal(denied.length, 1);
  assert.ok(answers.length >= 11 && answers.length <= 12, `${answers.length} answers to 12 messages`);
  const deniedAnswer = answers.find((a) => a.id === denied[0]!.id);
  assert.ok(!deniedAnswer || deniedAnswer.branch !== "cmd", "a denied command never reaches the runner");
  checkAnswers(answers, new Map(messages.map((m) => [m.id, m.text])));
  const count = (b: string) => answers.filter((a) => a.branch === b).length;
  assert.match(r.stdout, new RegExp(`answers by branch: qa ${count("qa")}, cmd ${count("cmd")}, chat ${count("chat")}`));
});

test("sage plan: the classifier, the router, its branches and their union fuse into one stage", () => {
  const r = sageCli(["plan", "examples/agent-router/pipeline.ts", "--format", "mermaid"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /messages --> intent_classifier\n/);
  assert.match(r.stdout, /intent_classifier --> intent_router\n/);
  for (const [label, branch] of [
    ["question", "qa"],
    ["command", "safety"],
    ["conversation", "chat"],
  ]) {
    assert.match(r.stdout, new RegExp(`intent_router -->\\|${label}\\| ${branch}\\n`));
  }
  assert.equal(r.stdout.match(/subgraph /g)?.length, 1);
});
