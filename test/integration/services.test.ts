/**
 * Registered services on a real worker and dev server: with stage threads off, one instance in the
 * worker serves every use and closes once at shutdown; with `worker.threads: 2`, each thread that
 * runs a service-using unit opens its own instance once, the main thread (the user sink) one more,
 * and every instance closes once when the worker stops, having counted every use between them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { threadId } from "node:worker_threads";
import type { SageConfig } from "../../core/config/schema.js";
import { createLogger } from "../../client/logger.js";
import { SageClient } from "../../client/sage-client.js";
import { createSageWorker } from "../../worker/sage-worker.js";
import { readJsonl, testConfig } from "../support/harness.js";
import pipeline, { SERVICE_JOURNAL_ENV, SINK_OUTPUT_ENV, type Item, type ServiceEvent } from "../fixtures/services.js";

const MODULE = resolve("test/fixtures/services.ts");
const ITEMS: Item[] = Array.from({ length: 3000 }, (_, id) => ({ id, text: `item ${id} with a few words` }));

/** Runs the job on a worker of this process (threads load the module), stops the worker, and reads the journal and the sink's lines. */
async function runWith(
  threads: number,
): Promise<{ config: SageConfig; journal: ServiceEvent[]; out: Array<{ id: number; mappedOn: number; sunkOn: number }> }> {
  const config = testConfig(`services-${threads}`, { "execution.split-bytes": "16kb", "execution.parallelism": 2, "worker.threads": threads });
  const input = join(config.dir, "items.jsonl");
  writeFileSync(input, ITEMS.map((i) => JSON.stringify(i)).join("\n") + "\n");
  const journalPath = join(config.dir, "journal.jsonl");
  const outPath = join(config.dir, "out.jsonl");
  process.env[SERVICE_JOURNAL_ENV] = journalPath;
  process.env[SINK_OUTPUT_ENV] = outPath;
  try {
    const worker = await createSageWorker({ pipeline, config, logger: createLogger(config.log.level), module: { path: MODULE } });
    const running = worker.run();
    const client = await SageClient.connect({ config });
    try {
      const job = await client.submit(pipeline, { jobId: `services-${threads}`, params: { input } });
      const result = await job.result();
      assert.equal(result.deadLetters, 0);
      assert.ok(result.splitsTotal >= 4, `expected several splits, got ${result.splitsTotal}`);
    } finally {
      await client.close();
      await worker.shutdown();
      await running;
    }
    return { config, journal: existsSync(journalPath) ? readJsonl<ServiceEvent>(journalPath) : [], out: readJsonl(outPath) };
  } finally {
    delete process.env[SERVICE_JOURNAL_ENV];
    delete process.env[SINK_OUTPUT_ENV];
  }
}

const where = (e: ServiceEvent): string => `${e.pid}/${e.thread}`;

test("threads off: one service instance in the worker serves the map and the sink, and closes once at shutdown", async () => {
  const { config, journal, out } = await runWith(0);
  assert.deepEqual(
    out.map((o) => o.id).sort((a, b) => a - b),
    ITEMS.map((i) => i.id),
  );
  assert.deepEqual(
    journal.map((e) => [e.kind, e.pid, e.thread]),
    [
      ["open", process.pid, threadId],
      ["close", process.pid, threadId],
    ],
  );
  assert.equal(journal[1]!.used, 2 * ITEMS.length, "the one instance saw every map and sink call");
  assert.equal(journal[0]!.identity, `sage-worker@${process.pid}`);
  assert.equal(journal[0]!.dataDir, resolve(config["data-dir"]));
});

test("threads on: one instance per thread that uses it, plus the main thread's; each closes once at shutdown", async () => {
  const { journal, out } = await runWith(2);
  assert.deepEqual(
    out.map((o) => o.id).sort((a, b) => a - b),
    ITEMS.map((i) => i.id),
  );
  const opens = journal.filter((e) => e.kind === "open");
  const closes = journal.filter((e) => e.kind === "close");
  assert.equal(new Set(opens.map(where)).size, opens.length, `an instance opened twice in one thread: ${JSON.stringify(journal)}`);
  assert.deepEqual(closes.map(where).sort(), opens.map(where).sort(), "each instance closes once");
  assert.ok(journal.findIndex((e) => e.kind === "close") > journal.map((e) => e.kind).lastIndexOf("open"), "an instance closed before the worker stopped");
  // The map ran in stage threads, each using its thread's instance; the user sink on the main thread.
  const mapThreads = new Set(out.map((o) => o.mappedOn));
  assert.ok(!mapThreads.has(threadId), "a map unit ran on the main thread");
  assert.ok(out.every((o) => o.sunkOn === threadId));
  assert.deepEqual(
    opens.map((e) => e.thread).sort((a, b) => a - b),
    [threadId, ...mapThreads].sort((a, b) => a - b),
  );
  assert.ok(opens.every((e) => e.pid === process.pid));
  assert.equal(
    closes.reduce((n, e) => n + e.used!, 0),
    2 * ITEMS.length,
    "the instances between them saw every call",
  );
});
