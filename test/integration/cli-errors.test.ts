/**
 * Bad input at the CLI: one clear message naming what and where, a non-zero exit code, nothing
 * written; a failed job's root cause said once; a job id never run twice. Also the plan renderings
 * a user pipes into other tools.
 */
import { test } from "node:test";
import { freePort, isServerUp } from "../../dev/temporal-server.js";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
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

const WORDCOUNT = "examples/wordcount/pipeline.ts";
const WORDCOUNT_INPUT = join(REPO, "examples/wordcount/input.txt");

test("sage run without a parameter the plan needs: exit 2 before anything starts, naming the parameter and who needs it", () => {
  const config = testConfig("cli-missing-param");
  const r = sageCli(["run", WORDCOUNT, "--param", `input=${WORDCOUNT_INPUT}`], { env: cliEnv(config) });
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^sage: pipeline "wordcount" needs job parameter "output" \(needed by sink "out"\), which was not given \(pass --param output=\.\.\.\)$/m,
  );
  assert.doesNotMatch(r.stderr, /worker started|submitted/);
});

test("a failed job: its root cause once, with the stage, the operator and the hint; the SDK's own failure lines only at debug", () => {
  const config = testConfig("cli-root-cause");
  const input = join(config.dir, "nope.txt");
  const args = ["run", WORDCOUNT, "--param", `input=${input}`, "--param", `output=${join(config.dir, "out.jsonl")}`];
  const r = sageCli(args, { env: { ...cliEnv(config), SAGE_LOG_LEVEL: "info" } });
  assert.equal(r.code, 1, r.stderr);
  const cause = `source "lines": cannot read input file "${input}": no such file (ENOENT)`;
  assert.match(r.stderr, /^sage: job sage\/wordcount\/\S+ failed: sage:splits failed: source "lines": cannot read input file /m);
  assert.equal(r.stderr.split(cause).length - 1, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /temporal-sdk|taskToken/);
  const debug = sageCli([...args, "--log-level", "debug"], { env: cliEnv(config) });
  assert.equal(debug.code, 1, debug.stderr);
  assert.match(debug.stderr, /"component":"temporal-sdk".*"msg":"Activity failed"/);
});

/** `sage run --json` of wordcount under `jobId`. */
function runWordcount(config: ReturnType<typeof testConfig>, jobId: string, input: string, output: string) {
  return sageCli(["run", WORDCOUNT, "--job-id", jobId, "--param", `input=${input}`, "--param", `output=${output}`, "--json"], { env: cliEnv(config) });
}

test("a job id run again is refused with exit 2, naming the earlier run, its status and parameters, with the same or other parameters", () => {
  const config = testConfig("cli-same-job-id");
  const [out1, out2] = [join(config.dir, "out1.jsonl"), join(config.dir, "out2.jsonl")];
  const first = runWordcount(config, "cli-same", WORDCOUNT_INPUT, out1);
  assert.equal(first.code, 0, first.stderr);
  const { runId } = JSON.parse(first.stdout) as { runId: string };
  const written = readFileSync(out1, "utf8");

  const other = runWordcount(config, "cli-same", WORDCOUNT_INPUT, out2);
  assert.equal(other.code, 2, other.stderr);
  assert.match(other.stderr, /job sage\/wordcount\/cli-same already exists; a job id is run once, so this request was not started/);
  assert.match(other.stderr, new RegExp(`earlier run: +${runId}, COMPLETED, started `));
  assert.ok(other.stderr.includes(`its params:    input=${WORDCOUNT_INPUT} output=${out1}`), other.stderr);
  assert.ok(other.stderr.includes(`this request:  differs in output=${out2}`), other.stderr);
  assert.match(other.stderr, /sage status sage\/wordcount\/cli-same/);
  assert.equal(other.stdout, "", "no summary of the earlier run is reported as this one's");
  assert.equal(existsSync(out2), false);

  const again = runWordcount(config, "cli-same", WORDCOUNT_INPUT, out1);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, new RegExp(`earlier run: +${runId}, COMPLETED`));
  assert.match(again.stderr, /this request: +the same parameters/);
  assert.equal(again.stdout, "");
  assert.equal(readFileSync(out1, "utf8"), written);
});

test("a failed job's id run again is refused too, pointing at sage rerun", () => {
  const config = testConfig("cli-failed-job-id");
  const missing = join(config.dir, "nope.txt");
  const failed = runWordcount(config, "cli-broken", missing, join(config.dir, "out.jsonl"));
  assert.equal(failed.code, 1, failed.stderr);
  const again = runWordcount(config, "cli-broken", WORDCOUNT_INPUT, join(config.dir, "out.jsonl"));
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /earlier run: +\S+, FAILED/);
  assert.ok(again.stderr.includes(`this request:  differs in input=${WORDCOUNT_INPUT}`), again.stderr);
  assert.match(again.stderr, /sage rerun sage\/wordcount\/cli-broken/);
});
