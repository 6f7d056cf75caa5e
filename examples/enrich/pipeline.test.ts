/** The enrich streaming example through the CLI: `sage run` feeds it from Kafka until `sage stop`; output exactly once. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { spawnSync } from "node:child_process";
import { REPO, cliEnv, sageCli, sageCliBackground, testConfig, until } from "../../test/support/harness.js";
import { streamTopics, testBrokers, testKafka } from "../../test/support/kafka.js";

test("sage run examples/enrich/pipeline.ts streams orders until sage stop; every valid order comes out once, bad ones go to the dead-letter topic", async () => {
  const t = streamTopics("enrich");
  const config = testConfig("enrich-cli");
  const env = {
    ...cliEnv(config),
    SAGE_KAFKA_BROKERS: testBrokers(),
    SAGE_KAFKA_DEAD_LETTER_TOPIC: t.dlq,
    ENRICH_INPUT_TOPIC: t.input,
    ENRICH_OUTPUT_TOPIC: t.output,
    ENRICH_GROUP: t.group,
  };
  const kafka = testKafka();
  const admin = await kafka.admin();
  await admin.ensureTopic(t.input, 2);
  await admin.ensureTopic(t.output, 2);
  await admin.close();
  const producer = await kafka.producer();
  const orders = Array.from({ length: 1_000 }, (_, i) => ({
    id: `o${i}`,
    customerId: `c${i % 13}`,
    items: [{ sku: "s", qty: 1 + (i % 4), price: i % 10 === 0 ? 0 : 25 }],
  }));
  await producer.send(t.input, [
    ...orders.map((o) => ({ key: o.customerId, value: JSON.stringify(o) })),
    { key: "x", value: JSON.stringify({ hello: "not an order" }) },
  ]);
  await producer.close();
  const run = sageCliBackground(["run", "examples/enrich/pipeline.ts", "--job-id", "enrich-cli", "--json"], { env });
  let stdout = "";
  let stderr = "";
  run.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  run.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(run, "exit");
  try {
    await until("every order through", async () => {
      const s = sageCli(["status", "enrich-cli", "--json"], { env });
      if (s.code !== 0) return undefined;
      const [job] = JSON.parse(s.stdout) as Array<{ progress: { records: number; counts: Record<string, { in: number }> } }>;
      return job && (job.progress.counts["out"]?.in ?? 0) + 0 >= 900 && job.progress.records >= 1_001 ? true : undefined;
    });
    const stop = sageCli(["stop", "enrich-cli"], { env });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /streaming job enrich-cli stopped/);
    const [code] = (await exited) as [number];
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout.trim().split("\n").pop()!) as { records: number; deadLetters: number; counts: Record<string, { out: number }> };
    assert.equal(result.records, 1_001);
    assert.equal(result.deadLetters, 1);
    const valid = orders.filter((o) => o.items[0]!.price > 0);
    assert.equal(result.counts["out"]!.out, valid.length);
    const out = (await kafka.readAll(t.output)).map((m) => JSON.parse(m.value!.toString()) as { id: string; tier: string; total: number; customerId: string });
    assert.deepEqual(out.map((o) => o.id).sort(), valid.map((o) => o.id).sort());
    assert.ok(out.every((o) => ["small", "medium", "large"].includes(o.tier)));
    const dead = await kafka.readAll(t.dlq);
    assert.equal(dead.length, 1);
    assert.match(dead[0]!.headers["sage-error"]!, /not an order/);
  } finally {
    if (run.exitCode === null) run.kill("SIGKILL");
  }
});

test("examples/enrich/client.ts runs the same streaming job from a client script and stops it cleanly", async () => {
  const t = streamTopics("enrich-client");
  const config = testConfig("enrich-client");
  const kafka = testKafka();
  const admin = await kafka.admin();
  await admin.ensureTopic(t.input, 2);
  await admin.ensureTopic(t.output, 2);
  await admin.close();
  const producer = await kafka.producer();
  const orders = Array.from({ length: 500 }, (_, i) => ({ id: `o${i}`, customerId: `c${i % 7}`, items: [{ sku: "s", qty: 1, price: 10 + i }] }));
  await producer.send(
    t.input,
    orders.map((o) => ({ key: o.customerId, value: JSON.stringify(o) })),
  );
  await producer.close();
  const r = spawnSync(process.execPath, ["--import", "tsx", "examples/enrich/client.ts", "500"], {
    cwd: REPO,
    env: {
      ...process.env,
      ...cliEnv(config),
      SAGE_KAFKA_BROKERS: testBrokers(),
      SAGE_KAFKA_DEAD_LETTER_TOPIC: t.dlq,
      ENRICH_INPUT_TOPIC: t.input,
      ENRICH_OUTPUT_TOPIC: t.output,
      ENRICH_GROUP: t.group,
    },
    encoding: "utf8",
    timeout: 180_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /stopped: 500 records, 500 enriched orders written exactly once, 0 dead letters/);
  const out = await kafka.readAll(t.output);
  assert.equal(out.length, 500);
  assert.equal(new Set(out.map((m) => (JSON.parse(m.value!.toString()) as { id: string }).id)).size, 500);
});
