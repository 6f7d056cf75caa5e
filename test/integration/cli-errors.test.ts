/**
 * Bad input at the CLI: one clear message naming what and where, a non-zero exit code, nothing
 * written. Also the plan renderings a user pipes into other tools.
 */
import { test } from "node:test";
import { freePort, isServerUp } from "../../dev/temporal-server.js";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, cliEnv, sageCli, scratchDir, testConfig } from "../support/harness.js";

const EMPTY_ENV = { SAGE_TEMPORAL_ADDRESS: "", SAGE_TEMPORAL_TASK_QUEUE: "" };

test("a module that exports no pipeline: exit 2, naming the module and what to export", () => {
  const r = sageCli(["plan", "test/fixtures/no-pipeline.ts"], { env: EMPTY_ENV });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /module ".*test\/fixtures\/no-pipeline\.ts" exports no pipeline/);
  assert.match(r.stderr, /definePipeline/);
});

test("a module that does not exist: exit 2, naming the path", () => {
  const r = sageCli(["run", "test/fixtures/nope.ts"], { env: EMPTY_ENV });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pipeline module ".*test\/fixtures\/nope\.ts" does not exist/);
});

test("two operators with the same name: exit 2 before anything runs, nothing written", () => {
  const config = testConfig("cli-dupes");
  const output = join(config.dir, "out.jsonl");
  const r = sageCli(["run", "test/fixtures/duplicate-names.ts", "--param", `output=${output}`], { env: cliEnv(config) });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /pipeline "dupes": two operators are named "step"/);
  assert.equal(existsSync(output), false);
});

test("an unknown key in sage.config.yaml: exit 2, naming the key and the file", () => {
  const dir = scratchDir("cli-config");
  writeFileSync(join(dir, "sage.config.yaml"), "execution:\n  paralelism: 4\n");
  const r = sageCli(["plan", join(REPO, "examples/wordcount/pipeline.ts")], { cwd: dir, env: EMPTY_ENV });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown config key "execution\.paralelism" \(from .*sage\.config\.yaml\)/);
});

test("a bad value from a flag: exit 2, naming key, value and flag", () => {
  const r = sageCli(["plan", "examples/wordcount/pipeline.ts", "--parallelism", "zero"], { env: EMPTY_ENV });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /execution\.parallelism = "zero" \(from command-line flag for execution\.parallelism\)/);
});

test("a server that is not running: exit 1, naming the address and how to start one", async () => {
  const address = `127.0.0.1:${await freePort()}`;
  const r = sageCli(["status", "--address", address], { env: EMPTY_ENV });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`no Temporal server answers at ${address}`));
  assert.match(r.stderr, /sage dev/);
});

test("sage plan renders JSON, Mermaid and DOT", () => {
  const json = sageCli(["plan", "examples/wordcount/pipeline.ts", "--format", "json"], { env: EMPTY_ENV });
  assert.equal(json.code, 0, json.stderr);
  const plan = JSON.parse(json.stdout) as { hash: string; stages: Array<{ name: string }> };
  assert.match(plan.hash, /^[0-9a-f]{64}$/);
  assert.deepEqual(
    plan.stages.map((s) => s.name),
    ["lines+split+pair+no-short+out"],
  );
  const mermaid = sageCli(["plan", "examples/wordcount/pipeline.ts", "--format", "mermaid"], { env: EMPTY_ENV });
  assert.match(mermaid.stdout, /^flowchart LR/);
  const dot = sageCli(["plan", "examples/wordcount/pipeline.ts", "--format", "dot", "--no-fusion"], { env: EMPTY_ENV });
  assert.match(dot.stdout, /^digraph "wordcount"/);
  assert.equal((dot.stdout.match(/subgraph/g) ?? []).length, 5);
  const text = sageCli(["plan", "examples/wordcount/pipeline.ts"], { env: EMPTY_ENV });
  assert.match(text.stdout, new RegExp(`plan ${plan.hash}`));
  assert.match(text.stdout, /records never cross workflow history/);
});

test("sage run starts a dev server when none answers at a local address, and sage dev --stop stops it", async () => {
  const config = testConfig("cli-own-server");
  const address = `127.0.0.1:${await freePort()}`;
  const env = { ...cliEnv(config), SAGE_TEMPORAL_ADDRESS: address, SAGE_TEMPORAL_UI_PORT: String(await freePort()) };
  const output = join(config.dir, "out.jsonl");
  try {
    const r = sageCli(
      ["run", "examples/wordcount/pipeline.ts", "--param", `input=${join(REPO, "examples/wordcount/input.txt")}`, "--param", `output=${output}`],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`started Temporal dev server .* on ${address}`));
    assert.match(r.stderr, /sage dev --stop/);
    assert.ok(existsSync(output));
    assert.equal(await isServerUp(address), true, "the server outlives `sage run`");
  } finally {
    const stop = sageCli(["dev", "--stop"], { env });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /stopped the Temporal dev server/);
  }
  assert.equal(await isServerUp(address), false);
});
