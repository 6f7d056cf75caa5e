/**
 * Stage threads on a real worker: a bounded job run with `worker.threads: 2` writes the same lines
 * and the same dead letters as with threads off; each thread opens its functions once and closes
 * them when the worker stops; a thread that dies in a unit (`process.exit` in a user function)
 * fails only that attempt, which is retried, and the job publishes every record once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { threadId } from "node:worker_threads";
import type { SageConfig } from "../../core/config/schema.js";
import { createLogger } from "../../client/logger.js";
import { SageClient } from "../../client/sage-client.js";
import type { JobResult } from "../../core/plan/job.js";
import { createSageWorker } from "../../worker/sage-worker.js";
import { readJsonl, testConfig } from "../support/harness.js";
import pipeline, { JOURNAL_ENV, type Item } from "../fixtures/stage-threads.js";

const MODULE = resolve("test/fixtures/stage-threads.ts");

interface Lifecycle {
  kind: "open" | "close";
  op: string;
  thread: number;
  pid: number;
}

/** Runs the job on a worker of this process given the pipeline's module (threads load it), then stops the worker. */
async function runWith(config: SageConfig, params: Record<string, string>, jobId: string): Promise<JobResult> {
  const worker = await createSageWorker({ pipeline, config, logger: createLogger(config.log.level), module: { path: MODULE } });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  try {
    const job = await client.submit(pipeline, { jobId, params });
    return await job.result();
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
  }
}

function writeItems(path: string, items: Item[]): void {
  writeFileSync(path, items.map((i) => JSON.stringify(i)).join("\n") + "\n");
}

/** The dead letters, each without the time it was written, the job's id and the error's stack (its frames differ by thread). */
function deadLettersOf(result: JobResult): unknown[] {
  assert.ok(result.deadLetterPath, "the job published no dead letters");
  return readJsonl<Record<string, unknown>>(result.deadLetterPath)
    .map(({ at: _at, jobId: _jobId, error, ...rest }): Record<string, unknown> => {
      const { stack: _stack, ...reason } = error as Record<string, unknown>;
      return { ...rest, error: reason };
    })
    .sort((a, b) => String(a.shard).localeCompare(String(b.shard)) || JSON.stringify(a.record).localeCompare(JSON.stringify(b.record)));
}

test("threads on and off: the same output line for line and the same dead letters; open/close once per thread", async () => {
  const items: Item[] = Array.from({ length: 3000 }, (_, id) => ({ id, text: `item ${id} with a few words`, ...(id % 500 === 42 ? { poison: true } : {}) }));
  const runs: Record<string, { result: JobResult; output: string; journal: Lifecycle[] }> = {};
  for (const threads of [0, 2]) {
    const config = testConfig(`stage-threads-${threads}`, { "execution.split-bytes": "16kb", "worker.threads": threads });
    const input = join(config.dir, "items.jsonl");
    const output = join(config.dir, "out.jsonl");
    const journalPath = join(config.dir, "journal.jsonl");
    writeItems(input, items);
    process.env[JOURNAL_ENV] = journalPath;
    try {
      const result = await runWith(config, { input, output }, `threads-${threads}`);
      const journal = existsSync(journalPath) ? readJsonl<Lifecycle>(journalPath) : [];
      runs[threads] = { result, output, journal };
    } finally {
      delete process.env[JOURNAL_ENV];
    }
  }
  const off = runs[0]!;
  const on = runs[2]!;
  assert.ok(off.result.splitsTotal >= 4, `expected several splits, got ${off.result.splitsTotal}`);
  const expected = items.filter((i) => !i.poison && i.id % 7 !== 0).length;
  assert.equal(readJsonl(off.output).length, expected);
  assert.equal(readFileSync(on.output, "utf8"), readFileSync(off.output, "utf8"), "threads changed the output");
  assert.deepEqual(on.result.counts, off.result.counts);
  assert.equal(on.result.deadLetters, 6);
  assert.deepEqual(deadLettersOf(on.result), deadLettersOf(off.result));
  const dead = deadLettersOf(on.result)[0] as { operator: string; attempts: number; error: { name: string; message: string } };
  assert.deepEqual([dead.operator, dead.attempts, dead.error.name], ["check", 2, "Error"]);
  assert.match(dead.error.message, /^poison record #\d+$/);
  // The stack kept with each letter points into the user's function, threads on as off.
  for (const run of [on, off]) {
    for (const entry of readJsonl<{ error: { stack?: string } }>(run.result.deadLetterPath!)) {
      assert.match(entry.error.stack ?? "", /at check \(.*test\/fixtures\/stage-threads\.ts:\d+:\d+\)/, "a dead letter without the stack of its throw");
    }
  }

  // Off: the main thread opened `upper` once and closed it at shutdown.
  assert.deepEqual(
    off.journal.map((e) => [e.kind, e.thread]),
    [
      ["open", threadId],
      ["close", threadId],
    ],
  );
  // On: only stage threads opened it, each once, and each closed it once when the worker stopped.
  const opens = on.journal.filter((e) => e.kind === "open").map((e) => e.thread);
  const closes = on.journal.filter((e) => e.kind === "close").map((e) => e.thread);
  assert.ok(opens.length >= 1 && opens.length <= 2, `expected one open per thread that ran a unit, got ${JSON.stringify(on.journal)}`);
  assert.ok(!opens.includes(threadId), "the main thread opened a function that runs in the threads");
  assert.equal(new Set(opens).size, opens.length, "a thread opened the same function twice");
  assert.deepEqual([...closes].sort(), [...opens].sort(), "each thread closes what it opened, once");
  assert.ok(on.journal.findIndex((e) => e.kind === "close") > on.journal.map((e) => e.kind).lastIndexOf("open"), "a close came before the last open");
});

test("a thread that exits inside a user function fails only that attempt: retried, every record published once", async () => {
  const config = testConfig("stage-threads-exit", { "execution.split-bytes": "16kb", "worker.threads": 2 });
  const input = join(config.dir, "items.jsonl");
  const output = join(config.dir, "out.jsonl");
  const marker = join(config.dir, "exited");
  const items: Item[] = Array.from({ length: 2000 }, (_, id) => ({ id, text: `item ${id}`, ...(id === 1234 ? { exitOnce: marker } : {}) }));
  writeItems(input, items);
  const result = await runWith(config, { input, output }, "thread-exit");
  assert.ok(existsSync(marker), "no thread exited");
  assert.notEqual(Number(readFileSync(marker, "utf8")), threadId, "the exit ran on the main thread");
  const ids = readJsonl<Item>(output).map((i) => i.id);
  assert.deepEqual(
    ids,
    items.filter((i) => i.id % 7 !== 0).map((i) => i.id),
  );
  assert.equal(result.deadLetters, 0);
  assert.equal(result.counts.out?.in, ids.length);
});
