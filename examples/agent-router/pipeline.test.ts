/**
 * The agent router on the real embedding model: `sage run` over a labelled set of 30 messages (none
 * of them among the classifier's examples) must send at least 90% to the right branch, with one
 * embedding request for the micro-batch of messages (plus one for the examples); the client script
 * runs it too; `sage plan` shows the classifier fused with the router and its branches.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { startModelServerProcess, type ModelServerProcess } from "../../models/server-process.js";
import { REPO, cliEnv, readJsonl, sageCli, testConfig } from "../../test/support/harness.js";
import type { Answer } from "./pipeline.js";

const LABELLED = join(REPO, "examples", "agent-router", "labelled.jsonl");
const BRANCH = { question: "qa", command: "cmd", conversation: "chat" } as const;

let models: ModelServerProcess;
before(async () => (models = await startModelServerProcess()));
after(async () => models.stop());

test("the embedding intent classifier routes at least 27 of 30 labelled messages to the right branch", async () => {
  const config = testConfig("agent-router-labelled");
  const output = join(config.dir, "answers.jsonl");
  const before = await models.stats();
  const r = sageCli(["run", "examples/agent-router/pipeline.ts", "--param", `input=${LABELLED}`, "--param", `output=${output}`, "--json"], {
    env: { ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` },
  });
  assert.equal(r.code, 0, r.stderr);
  const after = await models.stats();
  assert.equal(after.embeddings - before.embeddings, 2, "one request for the labelled examples, one for the batch of 30 messages");

  const labelled = readJsonl<{ id: number; text: string; intent: keyof typeof BRANCH }>(LABELLED);
  const answers = readJsonl<Answer>(output);
  assert.equal(answers.length, 30, "every message answered once (none trips the safety filter)");
  assert.equal(new Set(answers.map((a) => a.id)).size, 30);
  const wrong = labelled.filter((m) => answers.find((a) => a.id === m.id)!.branch !== BRANCH[m.intent]);
  assert.ok(wrong.length <= 3, `misrouted ${wrong.length} of 30: ${wrong.map((m) => m.text).join(" | ")}`);
  for (const a of answers) assert.ok(a.score > 0 && a.score <= 1.0001, `score ${a.score}`);
});

test("examples/agent-router/client.ts runs the example from a client script", () => {
  const config = testConfig("agent-router-client");
  const output = join(config.dir, "answers.jsonl");
  const messagesFile = join(REPO, "examples/agent-router/messages.jsonl");
  const r = spawnSync(process.execPath, ["--import", "tsx", "examples/agent-router/client.ts", messagesFile, output], {
    cwd: REPO,
    env: { ...process.env, ...cliEnv(config), SAGE_LLM_BASE_URL: `${models.url}/v1` },
    encoding: "utf8",
    timeout: 180_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const answers = readJsonl<Answer>(output);
  const ids = answers.map((a) => a.id);
  assert.equal(new Set(ids).size, ids.length, "no message answered twice");
  assert.ok(answers.length >= 11 && answers.length <= 12, `${answers.length} answers to 12 messages (the safety filter may drop one)`);
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
