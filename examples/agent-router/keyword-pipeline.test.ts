/**
 * The keyword variant of the agent router example (`keyword-pipeline.ts`), run for real through `sage run`, fused and unfused, over a few thousand
 * generated messages and one line that is not JSON: every answer comes from the branch a plain
 * TypeScript classification picks, each valid message is answered once (unless the safety filter
 * drops it), each branch keeps the input order, the broken line is a dead letter.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cliEnv, sageCli, scratchDir, testConfig, readJsonl } from "../../test/support/harness.js";

/** A message of the input and an answer of the output, as the example defines them. */
interface Message {
  id: number;
  text: string;
}
interface Answer {
  id: number;
  branch: string;
  reply: string;
}

const MESSAGES = 3000;
/** The broken line goes here (after this many valid lines). */
const BROKEN_AT = 1234;
const BROKEN = '{"id": 99999, "text": "this line was cut off';

const TEMPLATES: Array<(i: number) => string> = [
  (i) => `What is the status of ticket ${i}?`,
  (i) => `please restart worker ${i}`,
  (i) => `I had a good day, thanks ${i}`,
  (i) => `Run the report for week ${i % 52}`,
  (i) => `how do I run rm -rf safely ${i}?  `,
  (i) => `run rm -rf /tmp/cache-${i}`,
  (i) => `Stopping by to say hello ${i}`,
  (i) => `deploy build ${i} to staging`,
  (i) => `show me the logs of job ${i}?`,
  (i) => `SHOW disk usage on host ${i}`,
  (i) => `stop. the canary ${i}`,
  (i) => `Thanks, that answered question ${i}`,
];

/** The intent of a message, decided here without the example's classifier. */
function intentOf(text: string): "question" | "command" | "conversation" {
  if (text.trimEnd().endsWith("?")) return "question";
  const first = text.split(" ", 1)[0]!.toLowerCase();
  return text.includes(" ") && ["please", "run", "start", "stop", "deploy", "show"].includes(first) ? "command" : "conversation";
}

/** The answers the pipeline should write, by message (null: dropped by the safety filter). */
function answerOf(m: Message): Answer | null {
  switch (intentOf(m.text)) {
    case "question":
      return { id: m.id, branch: "qa", reply: `Let me look that up: ${m.text}` };
    case "command":
      return m.text.includes("rm -rf") ? null : { id: m.id, branch: "cmd", reply: `Running: ${m.text}` };
    case "conversation":
      return { id: m.id, branch: "chat", reply: `I hear you: ${m.text}` };
  }
}

interface Input {
  path: string;
  messages: Message[];
  answers: Answer[];
}

let shared: Input | undefined;
/** One input file (valid messages, one broken line) and its reference answers. */
function input(): Input {
  if (shared) return shared;
  const messages = Array.from({ length: MESSAGES }, (_, id) => ({ id, text: TEMPLATES[(id * 7) % TEMPLATES.length]!(id) }));
  const lines = messages.map((m) => JSON.stringify(m));
  lines.splice(BROKEN_AT, 0, BROKEN);
  const path = join(scratchDir("agent-router-input"), "messages.jsonl");
  writeFileSync(path, `${lines.join("\n")}\n`);
  const answers = messages.map(answerOf).filter((a): a is Answer => a !== null);
  shared = { path, messages, answers };
  return shared;
}

interface RunResult {
  phase: string;
  counts: Record<string, { in: number; out: number; dead: number }>;
  deadLetters: number;
  deadLetterPath: string | null;
  splitsTotal: number;
  activities: number;
}

/** `sage run` of the example with small splits; `fusion: false` goes through a config file. */
function run(label: string, fusion: boolean): { answers: Answer[]; result: RunResult } {
  const config = testConfig(`agent-router-${label}`);
  const output = join(config.dir, "answers.jsonl");
  const configFile = join(config.dir, "sage.config.yaml");
  writeFileSync(configFile, `execution:\n  fusion: ${fusion}\n  split-bytes: 16kb\n`);
  const r = sageCli(
    ["run", "examples/agent-router/keyword-pipeline.ts", "--config", configFile, "--param", `input=${input().path}`, "--param", `output=${output}`, "--json"],
    {
      env: cliEnv(config),
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split("\n").pop()!) as RunResult;
  return { answers: readJsonl<Answer>(output), result };
}

const sortedJson = (values: readonly unknown[]): string[] => values.map((v) => JSON.stringify(v)).sort();

/** Everything both runs must satisfy. */
function check(label: string, answers: Answer[], result: RunResult): void {
  const want = input().answers;
  assert.equal(result.phase, "done");
  assert.ok(result.splitsTotal >= 8, `${label}: expected many splits, got ${result.splitsTotal}`);

  // Every answer comes from the branch the reference picks, with the reference reply.
  const byId = new Map(input().messages.map((m) => [m.id, m] as const));
  for (const a of answers) assert.deepEqual(a, answerOf(byId.get(a.id)!), `${label}: answer to message ${a.id}`);
  // Each valid message answered exactly once, but the commands the safety filter drops.
  const ids = answers.map((a) => a.id);
  assert.equal(new Set(ids).size, ids.length, `${label}: a message was answered twice`);
  assert.deepEqual(
    [...ids].sort((a, b) => a - b),
    want.map((a) => a.id),
  );
  assert.deepEqual(sortedJson(answers), sortedJson(want));
  // Per-branch order: each branch's answers in input order.
  for (const branch of ["qa", "cmd", "chat"]) {
    const mine = answers.filter((a) => a.branch === branch).map((a) => a.id);
    assert.deepEqual(
      mine,
      want.filter((a) => a.branch === branch).map((a) => a.id),
      `${label}: branch ${branch} out of order`,
    );
  }

  const intents = input().messages.map((m) => intentOf(m.text));
  const n = (intent: string) => intents.filter((i) => i === intent).length;
  const branch = (b: string) => want.filter((a) => a.branch === b).length;
  assert.deepEqual(result.counts.messages, { in: MESSAGES + 1, out: MESSAGES, dead: 1 });
  assert.deepEqual(result.counts["intent-router"], { in: MESSAGES, out: MESSAGES, dead: 0 });
  assert.deepEqual(result.counts.qa, { in: n("question"), out: branch("qa"), dead: 0 });
  assert.deepEqual(result.counts.safety, { in: n("command"), out: branch("cmd"), dead: 0 });
  assert.deepEqual(result.counts.cmd, { in: branch("cmd"), out: branch("cmd"), dead: 0 });
  assert.deepEqual(result.counts.chat, { in: n("conversation"), out: branch("chat"), dead: 0 });
  assert.deepEqual(result.counts["response-aggregator"], { in: want.length, out: want.length, dead: 0 });

  assert.equal(result.deadLetters, 1);
  const dead = readJsonl<{ operator: string; record: unknown; error: { message: string } }>(result.deadLetterPath!);
  assert.equal(dead.length, 1);
  assert.equal(dead[0]!.operator, "messages");
  assert.equal(dead[0]!.record, BROKEN);
  assert.match(dead[0]!.error.message, /invalid JSON/);
}

test("sage run examples/agent-router/keyword-pipeline.ts: every message reaches exactly its branch, fused and unfused, with the same answers", () => {
  const { answers: want } = input();
  // The input exercises every branch, the safety filter and the classifier's edge cases.
  for (const b of ["qa", "cmd", "chat"]) assert.ok(want.filter((a) => a.branch === b).length > 300, `branch ${b} is thin`);
  assert.ok(want.length < MESSAGES, "the safety filter drops nothing");

  const fused = run("fused", true);
  check("fused", fused.answers, fused.result);
  const unfused = run("unfused", false);
  check("unfused", unfused.answers, unfused.result);
  // Fused: one activity per split (plus splits and commit); unfused: each batch crosses history per operator.
  assert.equal(fused.result.activities, fused.result.splitsTotal + 2);
  assert.ok(unfused.result.activities > unfused.result.splitsTotal * 9, `unfused ran only ${unfused.result.activities} activities`);
  assert.deepEqual(sortedJson(unfused.answers), sortedJson(fused.answers));
  assert.deepEqual(unfused.result.counts, fused.result.counts);
});

test("sage plan shows the router's branches and their union, fused into one stage", () => {
  const r = sageCli(["plan", "examples/agent-router/keyword-pipeline.ts", "--format", "mermaid"]);
  assert.equal(r.code, 0, r.stderr);
  for (const [label, branch] of [
    ["question", "qa"],
    ["command", "safety"],
    ["conversation", "chat"],
  ]) {
    assert.match(r.stdout, new RegExp(`intent_router -->\\|${label}\\| ${branch}\\n`));
  }
  for (const from of ["qa", "cmd", "chat"]) assert.match(r.stdout, new RegExp(`${from} --> intent_router_union\\n`));
  assert.equal(r.stdout.match(/subgraph /g)?.length, 1);
});
