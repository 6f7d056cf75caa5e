/**
 * A streaming unit's chain on the stage threads of a real worker (given the pipeline's module,
 * `worker.threads: 2`), against the real broker: the main thread holds each unit's transaction and
 * commits the messages its thread wrote. Every record comes out once, in key order, from a thread;
 * poison and undecodable records reach the dead-letter topic with their reason, stack and bytes; a
 * thread that ends itself in a unit (`process.exit`) fails only that attempt, which runs again, and
 * the worker lives on; each thread opens its functions once and closes them when the worker stops.
 * The threads hand their messages over in parts while they run, which go ahead into the transaction
 * (`kafka.send-ahead`), and a thread's exit after its parts went ahead commits none of them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { threadId } from "node:worker_threads";
import { pino } from "pino";
import { SageClient } from "../../client/sage-client.js";
import { createSageWorker } from "../../worker/sage-worker.js";
import { createTopics, exactlyOnce, keysOutOfOrder, produceRange, startShim, streamConfig, streamTopics, testKafka, waitForRecords } from "../support/kafka.js";
import pipeline, { EXIT_ENV, JOURNAL_ENV, type Tagged } from "../fixtures/stream-threads.js";

const MODULE = resolve("test/fixtures/stream-threads.ts");

test("streaming units on stage threads: exactly once, dead letters with stack and bytes, a thread's exit retried", async () => {
  const t = streamTopics("stream-threads");
  const config = streamConfig("stream-threads", t.dlq, {
    "execution.parallelism": 2,
    "worker.threads": 2,
    "worker.stream-threads": true,
    "kafka.max-batch-records": 300,
    // Units of up to 16 batches hand their messages to the main thread in many parts while the chain runs.
    "kafka.send-ahead": 100,
  });
  const journal = join(config.dir, "journal.jsonl");
  const marker = join(config.dir, "exited");
  const N = 6_000;
  const EXIT_ID = 4_321;
  const poison = (id: number) => id % 700 === 11;
  // The fixture and the threads read these; threads copy the environment when the worker starts them.
  Object.assign(process.env, t.env, { [JOURNAL_ENV]: journal, [EXIT_ENV]: `${EXIT_ID}:${marker}` });
  const kafka = testKafka();
  await createTopics(kafka, t, 2);
  await produceRange(kafka, t.input, 0, N, poison);
  const producer = await kafka.producer();
  await producer.send(t.input, [{ key: "bad", value: Buffer.from([0xff, 0xfe, 0x00]) }]);
  await producer.close();

  // Each commit's debug line says how many messages went ahead of it; the rest of the log as configured.
  const ahead: number[] = [];
  const shown = pino.levels.values[config.log.level] ?? 40;
  const logger = pino(
    { level: "debug" },
    {
      write(line: string) {
        const entry = JSON.parse(line) as { level: number; msg: string; ahead?: number };
        if (entry.msg === "kafka transaction" && entry.ahead !== undefined) ahead.push(entry.ahead);
        if (entry.level >= shown) process.stderr.write(line);
      },
    },
  );
  const worker = await createSageWorker({ pipeline, config, logger, module: { path: MODULE } });
  const running = worker.run();
  const client = await SageClient.connect({ config });
  const { job, shim } = await startShim(client, pipeline, config, "stream-threads");
  const poisoned = Array.from({ length: N }, (_, i) => i).filter(poison).length;
  try {
    const p = await waitForRecords(job, N + 1);
    assert.equal(p.deadLetters, poisoned + 1);
    await job.stop();
    await shim.done;
    const result = await job.result();
    assert.equal(result.counts["out"]!.out, N - poisoned, "each record counted once in the workflows");

    const out = (await kafka.readAll(t.output)).map((m) => JSON.parse(m.value!.toString("utf8")) as Tagged);
    assert.deepEqual(exactlyOnce(out, 0, N, poison), { missing: 0, duplicated: 0, unexpected: 0, sampleMissing: [], sampleDuplicated: [] });
    assert.deepEqual(keysOutOfOrder(out), []);
    const threads = new Set(out.map((r) => r.thread));
    assert.ok(!threads.has(threadId), `no record ran on the main thread (threads: ${[...threads].join(", ")})`);
    assert.ok(
      ahead.some((n) => n > 0),
      `parts went ahead while the threads ran (messages ahead per commit: ${ahead.join(", ")})`,
    );
    assert.ok(existsSync(marker), "a thread ran record 4321 and exited");
    assert.ok(!threads.has(Number(readFileSync(marker, "utf8"))), "the thread that exited wrote nothing: its attempt was not committed");
    assert.ok(
      out.some((r) => r.id === EXIT_ID),
      "its unit ran again on another thread",
    );

    const dead = await kafka.readAll(t.dlq);
    assert.equal(dead.length, poisoned + 1);
    const poisonLetters = dead.filter((d) => /is poison/.test(d.headers["sage-error"] ?? ""));
    assert.equal(poisonLetters.length, poisoned);
    for (const d of poisonLetters) {
      assert.equal(d.headers["sage-operator"], "double");
      assert.match(d.headers["sage-error-stack"] ?? "", /is poison\n\s+at check/, "the stack thrown in the thread");
    }
    const raw = dead.find((d) => d.key?.toString() === "bad");
    assert.ok(raw, "the undecodable record is a dead letter");
    assert.ok(Buffer.isBuffer(raw.value));
    assert.deepEqual([...raw.value], [0xff, 0xfe, 0x00], "an undecodable record keeps its bytes across the thread");
  } finally {
    await shim.stop();
    await client.close();
    await worker.shutdown();
    await running;
  }
  const lines = readFileSync(journal, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { kind: "open" | "close"; thread: number; pid: number });
  const opened = lines.filter((l) => l.kind === "open").map((l) => l.thread);
  const closed = lines.filter((l) => l.kind === "close").map((l) => l.thread);
  assert.ok(!opened.includes(threadId), "the main thread never opened the chain's functions");
  assert.equal(new Set(opened).size, opened.length, `each thread opened its functions once: ${opened.join(", ")}`);
  // The thread that exited never closed; every other thread closed what it opened.
  const exited = Number(readFileSync(marker, "utf8"));
  assert.deepEqual(
    closed.sort((a, b) => a - b),
    opened.filter((id) => id !== exited).sort((a, b) => a - b),
  );
});
