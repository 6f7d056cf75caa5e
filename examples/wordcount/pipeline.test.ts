/** The wordcount example, run for real: through the CLI and from the client script. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, cliEnv, sageCli, testConfig } from "../../test/support/harness.js";

function reference(input: string): Array<{ word: string; n: number }> {
  return input
    .split("\n")
    .flatMap((line) => line.toLowerCase().split(/\W+/).filter(Boolean))
    .map((w) => ({ word: w, n: 1 }))
    .filter((p) => p.word.length > 2);
}

test("sage run examples/wordcount/pipeline.ts writes exactly the reference output", () => {
  const config = testConfig("wordcount-cli");
  const output = join(config.dir, "out.jsonl");
  const input = join(REPO, "examples/wordcount/input.txt");
  const r = sageCli(["run", "examples/wordcount/pipeline.ts", "--param", `input=${input}`, "--param", `output=${output}`, "--json"], { env: cliEnv(config) });
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split("\n").pop()!) as { phase: string; counts: Record<string, { in: number; out: number }>; workflowId: string };
  const got = readFileSync(output, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as unknown);
  const want = reference(readFileSync(input, "utf8"));
  assert.deepEqual(got, want);
  assert.equal(result.phase, "done");
  assert.equal(result.counts.out?.out, want.length);
  assert.match(result.workflowId, /^sage\/wordcount\//);
});

test("examples/wordcount/client.ts runs the same job from a client script", () => {
  const config = testConfig("wordcount-client");
  const output = join(config.dir, "out.jsonl");
  const input = join(REPO, "examples/wordcount/input.txt");
  const r = sageCliLikeTsx(["examples/wordcount/client.ts", input, output], cliEnv(config));
  assert.equal(r.status, 0, r.stderr);
  const got = readFileSync(output, "utf8").trim().split("\n").length;
  assert.equal(got, reference(readFileSync(input, "utf8")).length);
  assert.match(r.stdout, /records out/);
});

import { spawnSync } from "node:child_process";
function sageCliLikeTsx(args: string[], env: Record<string, string>) {
  return spawnSync(process.execPath, ["--import", "tsx", ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", timeout: 180_000 });
}
