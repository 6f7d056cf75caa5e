/**
 * Per-line lineage of bounded jobs' file outputs (real dev server, in-process worker): every line
 * of the output names the source file and the byte range of the input line it came from, with the
 * split, the job workflow's run and the attempt that wrote it, also when every split ran twice with
 * different output (the committed attempt's sidecar is the one kept); and an LLM job's lines list
 * the model calls that shaped them, each a request the response cache holds. The LLM test runs
 * against the deterministic test provider (`models/fault-server.ts`): it checks request hashes and
 * cache keys, which do not depend on what a model answers, and a real model would only make it slow.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileLineage, type FileLineageAnswer } from "../../client/lineage/file-lineage.js";
import { requestKey, ResponseCache, type CachedResponse } from "../../connectors/llm/response-cache.js";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { cliEnv, readJsonl, runJob, sageCli, testConfig } from "../support/harness.js";
import pipeline, { DROPPED, seen, type LineageRecord } from "../fixtures/file-lineage.js";
import llmPipeline, { type LlmRecord } from "../fixtures/llm-ops.js";

let provider: FaultServer;
before(async () => (provider = await startFaultServer()));
after(async () => provider.close());

const N = 2_000;

test("every line of a file output names its source line, after every split was retried with different output", async () => {
  seen.ids.clear();
  seen.failedShards.clear();
  // About 10 splits, each retried once (its user sink's finish fails on the first attempt).
  const config = testConfig("file-lineage", { "execution.split-bytes": 8_000 });
  const input = join(config.dir, "input.jsonl");
  const output = join(config.dir, "out.jsonl");
  // Lines of varying length, so a wrong byte range cannot land on the right record by chance.
  writeFileSync(
    input,
    Array.from({ length: N }, (_, id): string => JSON.stringify({ id, pad: "x".repeat(id % 17) } satisfies LineageRecord)).join("\n") + "\n",
  );
  const source = readFileSync(input);
  const jobId = "file-lineage";
  const { job } = await runJob(pipeline, config, { input, output }, jobId);
  assert.ok(seen.failedShards.size >= 8, `${seen.failedShards.size} shards failed once`);

  const lines = readJsonl<{ id: number; copy: number }>(output);
  // What the committed (second) attempts wrote: each kept record once, every third twice.
  const kept = Array.from({ length: N }, (_, id) => id).filter((id) => id % 7 !== DROPPED);
  assert.equal(lines.length, kept.length + kept.filter((id) => id % 3 === 0).length);

  const wrong: string[] = [];
  const runs = new Set<string>();
  for (const [k, line] of lines.entries()) {
    const answer = await fileLineage(config["data-dir"], "file-lineage", jobId, `${output}:${k + 1}`);
    const at = answer.source;
    const record = at?.kind === "file" ? (JSON.parse(source.subarray(at.start, at.end).toString("utf8")) as LineageRecord) : null;
    if (at?.kind !== "file" || at.path !== input || record?.id !== line.id || source[at.end] !== 0x0a || answer.batch.attempt !== 2)
      wrong.push(`line ${k + 1} (id ${line.id}): ${JSON.stringify(answer.source)} attempt ${answer.batch.attempt}`);
    runs.add(`${answer.batch.workflowId} ${answer.batch.runId}`);
  }
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} lines with a wrong source`);
  assert.deepEqual([...runs], [`${job.workflowId} ${job.runId}`]);

  // `sage lineage` prints the same, with the split and a Web UI link to the run.
  const k = lines.length - 1;
  const cli = sageCli(["lineage", jobId, `${output}:${k + 1}`, "--json"], { env: cliEnv(config) });
  assert.equal(cli.code, 0, cli.stderr);
  const printed = JSON.parse(cli.stdout) as FileLineageAnswer & { webUi: string | null };
  assert.deepEqual(printed.source, (await fileLineage(config["data-dir"], "file-lineage", jobId, `${output}:${k + 1}`)).source);
  assert.equal((printed.batch.split?.descriptor as { path: string }).path, input);
  assert.match(printed.webUi ?? "", new RegExp(`/${encodeURIComponent(job.runId)}/`));
  const text = sageCli(["lineage", jobId, `${output}:${lines.length + 1}`], { env: cliEnv(config) });
  assert.notEqual(text.code, 0);
  assert.match(text.stderr, /there is no line/);
});

test("an LLM job's output lines list the model calls that shaped them, each held by the response cache", async () => {
  const config = testConfig("file-lineage-llm", { "llm.base-url": `${provider.url}/v1`, "execution.split-bytes": 300 });
  const input = join(config.dir, "input.jsonl");
  const output = join(config.dir, "out.jsonl");
  const records = Array.from({ length: 12 }, (_, id): LlmRecord => ({ id, key: `key ${id}`, text: `question ${id}` }));
  writeFileSync(input, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  const jobId = "file-lineage-llm";
  await runJob(llmPipeline, config, { input, output }, jobId);
  const cache = new ResponseCache(config["data-dir"]);
  const recorded = await cache.recorded("llm-ops", jobId);
  const lines = readJsonl<{ id: number }>(output);
  assert.equal(lines.length, records.length);
  for (const [k, line] of lines.entries()) {
    const answer = await fileLineage(config["data-dir"], "llm-ops", jobId, `${output}:${k + 1}`);
    assert.equal(answer.source?.kind, "file");
    // One chat call for the record itself (generate), one embeddings call for the batch of up to 4 it was in (embed).
    const chats = answer.llm.filter((c) => c.at !== null);
    const embeds = answer.llm.filter((c) => c.at === null);
    assert.equal(chats.length, 1, JSON.stringify(answer.llm));
    assert.equal(embeds.length, 1, JSON.stringify(answer.llm));
    for (const call of answer.llm) {
      assert.ok(recorded.has(call.key), `request ${call.key} is in the job's record`);
      const entry = (await cache.get(call.key)) as CachedResponse;
      assert.ok(entry, `the cache holds ${call.key}`);
      // The key is the hash of the request the cache holds: the request, as the model was asked.
      assert.equal(requestKey(entry.kind, entry.request), call.key);
      assert.equal(call.model, (entry.request as { model: string }).model);
    }
    // The chat request asked about this line's own record.
    const chat = (await cache.get(chats[0]!.key))!;
    assert.match(JSON.stringify(chat.request), new RegExp(`question ${line.id}\\b`));
    const embedded = (await cache.get(embeds[0]!.key))!;
    assert.ok((embedded.request as { input: string[] }).input.includes(`key ${line.id}`), JSON.stringify(embedded.request));
  }
  assert.ok(existsSync(join(config["data-dir"], "lineage", "llm-ops")), "the lineage is kept under the data dir");
});
