/**
 * Continue-as-new of a bounded job: the test server suggests it at 600 history events, so a job with
 * ~150 splits checkpoints at least once; the output must equal an uninterrupted in-process reference.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink, FileSource } from "../../core/api/connectors.js";
import { SageClient } from "../../client/sage-client.js";
import { runJob, testConfig } from "../support/harness.js";

const pipeline = definePipeline("checkpointed", (env) =>
  env
    .fromSource(FileSource.lines(env.param("input")), { name: "lines" })
    .map((l: string) => ({ n: Number(l.split(" ")[1]), l }), { name: "parse" })
    .filter((r) => r.n % 3 !== 0, { name: "drop-thirds" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

test("a job over many splits continues as new, skips done splits, and loses and repeats nothing", async () => {
  const config = testConfig("checkpoint", { "execution.split-bytes": "200b", "execution.parallelism": 4 });
  const input = join(config.dir, "in.txt");
  const lines = Array.from({ length: 2000 }, (_, i) => `line ${i} ${"x".repeat(i % 17)}`);
  writeFileSync(input, lines.join("\n") + "\n");
  const output = join(config.dir, "out.jsonl");
  const { job, result } = await runJob(pipeline, config, { input, output });

  const want = lines.map((l) => ({ n: Number(l.split(" ")[1]), l })).filter((r) => r.n % 3 !== 0);
  const got = readFileSync(output, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as unknown);
  assert.deepEqual(got, want);
  assert.ok(result.splitsTotal > 100, `expected many splits, got ${result.splitsTotal}`);
  assert.equal(result.splitsDone, result.splitsTotal);
  assert.equal(result.counts.lines?.in, lines.length);
  assert.equal(result.counts.out?.out, want.length);

  const client = await SageClient.connect({ config });
  const runs: string[] = [];
  try {
    for await (const w of client.temporal.workflow.list({ query: `WorkflowId = "${job.workflowId}"` })) runs.push(w.runId);
  } finally {
    await client.close();
  }
  assert.ok(runs.length >= 2, `expected the job to continue as new at least once, saw ${runs.length} run(s)`);
});
