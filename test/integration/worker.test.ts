/** Worker-side guarantees: plan hash check, Prometheus metrics, SDK logs kept off stdout. */
import { test } from "node:test";
import { freePort } from "../../dev/temporal-server.js";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import { SageClient, JobFailedError } from "../../client/sage-client.js";
import { runJob, startWorker, testConfig } from "../support/harness.js";

const served = definePipeline("versioned", (env) =>
  env
    .fromCollection([1, 2, 3], { name: "nums" })
    .map((x) => x * 2, { name: "double" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);
const changed = definePipeline("versioned", (env) =>
  env
    .fromCollection([1, 2, 3], { name: "nums" })
    .map((x) => x * 3, { name: "double" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

test("a worker refuses a job whose plan hash it cannot serve, naming both hashes", async () => {
  const config = testConfig("plan-mismatch");
  const output = join(config.dir, "out.jsonl");
  const worker = await startWorker(served, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(changed, { params: { output } });
    const submitted = changed.compile({ parallelism: config.execution.parallelism }).plan.hash;
    const own = served.compile({ parallelism: config.execution.parallelism }).plan.hash;
    assert.notEqual(submitted, own);
    await assert.rejects(job.result(), (err: unknown) => {
      assert.ok(err instanceof JobFailedError);
      assert.match(err.message, new RegExp(`plan hash ${own}`));
      assert.match(err.message, new RegExp(`plan hash ${submitted}`));
      return true;
    });
    assert.equal((await job.describe()).status.name, "FAILED");
    assert.throws(() => readFileSync(output), /ENOENT/);
  } finally {
    await client.close();
    await worker.stop();
  }
});

test("the worker's /metrics endpoint counts records per operator", async () => {
  const port = await freePort();
  const config = testConfig("metrics", { "monitoring.enabled": true, "monitoring.port": port, "monitoring.sdk-metrics": false });
  const output = join(config.dir, "out.jsonl");
  const worker = await startWorker(served, config);
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(served, { params: { output } });
    await job.result();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const labels = (rest: string) => `\\{pipeline="versioned",job_id="${job.jobId.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}",${rest}\\}`;
    assert.match(text, new RegExp(`sage_operator_records_in_total${labels('operator="double"')} 3`));
    assert.match(text, new RegExp(`sage_operator_records_out_total${labels('operator="out"')} 3`));
    assert.match(text, new RegExp(`sage_stage_duration_seconds_count${labels('stage="s0"')} \\d+`));
  } finally {
    await client.close();
    await worker.stop();
  }
});

test("results of a job carry counts per operator and the published output", async () => {
  const config = testConfig("result-shape");
  const output = join(config.dir, "out.jsonl");
  const { result, job } = await runJob(served, config, { output });
  assert.equal(result.phase, "done");
  assert.deepEqual(result.counts.double, { in: 3, out: 3, dead: 0 });
  assert.equal(result.outputs.out, output);
  assert.equal(readFileSync(output, "utf8"), "2\n4\n6\n");
  assert.equal(job.workflowId, `sage/versioned/${job.jobId}`);
  const client = await SageClient.connect({ config });
  try {
    const memo = (await (await client.job(job.workflowId)).describe()).memo as { planHash?: string };
    assert.equal(memo.planHash, served.compile({ parallelism: config.execution.parallelism }).plan.hash);
  } finally {
    await client.close();
  }
});
