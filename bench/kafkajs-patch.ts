/**
 * What our patch of kafkajs (`patches/kafkajs+2.2.4.patch`) saves a sink transaction: kafkajs as
 * published (a copy of the installed package with the patch reversed, in a temporary directory)
 * against kafkajs as installed, and optionally the confluent client, each writing the same units in
 * transactions on its own transactional producer, alternating unit by unit so the machine's drift
 * falls on all alike. Each unit is `--records` keyed records of ~200 bytes with a lineage header and
 * the source record's timestamp, as the sink writes them, sent the sink's way (one produce call per
 * partition leader). It prints wall time, process CPU and main-thread busy time (event-loop
 * utilization) per transaction and per record. It starts its own broker.
 *
 *   npx tsx bench/kafkajs-patch.ts [--records 16000,1500,70] [--transactions 12] [--forms published,patched,confluent]
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import * as kafkajs from "kafkajs";
import { freePort } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { Partitioning, leadersOf, topicMessagesOf } from "../connectors/kafka/send-chunks.js";
import { transactionalProducerConfig } from "../connectors/kafka/kafkajs-client.js";
import { createConfluentClient } from "../connectors/kafka/confluent-client.js";
import type { OutgoingMessage } from "../connectors/kafka/client.js";
import { machineLine, printTable, saveResult } from "./machine.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const SIZES = arg("records", "16000,1500,70").split(",").map(Number);
const N = Number(arg("transactions", "12"));
const FORMS = arg("forms", "published,patched").split(",");
for (const f of FORMS) if (!["published", "patched", "confluent"].includes(f)) throw new Error(`--forms: "${f}" is not published, patched or confluent`);
const OUT = "patch.out";
const PATCH = resolve("patches/kafkajs+2.2.4.patch");

type Unit = Array<{ topic: string; message: OutgoingMessage }>;

/** A unit of `n` records as the sink writes them: key, JSON value, lineage header, the source's timestamp. */
function unitOf(t: number, n: number): Unit {
  const out: Unit = [];
  const timestamp = String(Date.now());
  for (let i = 0; i < n; i++) {
    const value = JSON.stringify({ id: t * n + i, key: `u${i % 97}`, sentAt: Date.now(), amount: i, payload: "x".repeat(120), tier: "small" });
    out.push({
      topic: OUT,
      message: { key: Buffer.from(`u${i % 97}`), value: Buffer.from(value), headers: { "sage-lineage": `p0:${t}:${i}:0123456789abcdef` }, timestamp },
    });
  }
  return out;
}

/** kafkajs as published: the installed package copied to `dir` with our patch reversed. */
function publishedKafkajs(dir: string): typeof kafkajs {
  const installed = dirname(createRequire(import.meta.url).resolve("kafkajs/package.json"));
  cpSync(installed, join(dir, "node_modules", "kafkajs"), { recursive: true });
  // The patch names node_modules/kafkajs/...: reversed from `dir`, it restores the published files.
  execFileSync("patch", ["-R", "-p1", "-s", "-i", PATCH], { cwd: dir });
  return createRequire(join(dir, "index.js"))("kafkajs") as typeof kafkajs;
}

console.log(`sink transactions, kafkajs as published against patched, alternating; ${N} per size and form; ${machineLine()}`);
const dir = mkdtempSync(join(tmpdir(), "sage-bench-patch-"));
const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
try {
  const kafka = new kafkajs.Kafka({ brokers: [broker.address], logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: OUT, numPartitions: 4 }], waitForLeaders: true });
  const partitioning = new Partitioning(async (topic) => leadersOf((await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions));
  /** A transactional producer of `lib`, configured as the sink's kafkajs ones. */
  const kafkajsForm = async (lib: typeof kafkajs, id: string) => {
    const producer = new lib.Kafka({ brokers: [broker.address], logLevel: lib.logLevel.NOTHING }).producer(transactionalProducerConfig(id));
    await producer.connect();
    return {
      write: async (unit: Unit) => {
        const txn = await producer.transaction();
        await partitioning.send(unit, (call) => txn.sendBatch(topicMessagesOf(call)));
        await txn.commit();
      },
      close: () => producer.disconnect(),
    };
  };
  const forms = new Map<string, { write(unit: Unit): Promise<void>; close(): Promise<void> }>();
  for (const form of FORMS) {
    if (form === "published") forms.set(form, await kafkajsForm(publishedKafkajs(join(dir, "published")), "patch-published"));
    if (form === "patched") forms.set(form, await kafkajsForm(kafkajs, "patch-patched"));
    if (form === "confluent") {
      const producer = createConfluentClient({ brokers: [broker.address] }).transactionalProducer("patch-confluent");
      forms.set(form, {
        write: async (unit) => {
          const txn = await producer.begin();
          await txn.send(unit);
          await txn.commit();
        },
        close: () => producer.close(),
      });
    }
  }
  const rows: string[][] = [];
  const result: Record<string, unknown> = { transactions: N, sizes: {} };
  for (const n of SIZES) {
    const sum = new Map(FORMS.map((f) => [f, { wall: 0, cpu: 0, busy: 0 }]));
    // Two rounds of warm-up, not counted; then the order alternates so neither form always goes first.
    for (let t = -2; t < N; t++) {
      for (const form of t % 2 === 0 ? FORMS : [...FORMS].reverse()) {
        const unit = unitOf(t + 2, n);
        const elu = performance.eventLoopUtilization();
        const cpu = process.cpuUsage();
        const started = performance.now();
        await forms.get(form)!.write(unit);
        const wall = performance.now() - started;
        const used = process.cpuUsage(cpu);
        const busy = performance.eventLoopUtilization(elu).active;
        if (t < 0) continue;
        const s = sum.get(form)!;
        s.wall += wall;
        s.cpu += (used.user + used.system) / 1000;
        s.busy += busy;
      }
    }
    for (const form of FORMS) {
      const s = sum.get(form)!;
      const per = (ms: number) => ms / N;
      const us = (ms: number) => ((ms / N / n) * 1000).toFixed(2);
      rows.push([`${n}`, form, per(s.wall).toFixed(1), per(s.cpu).toFixed(1), per(s.busy).toFixed(1), us(s.wall), us(s.busy)]);
      (result.sizes as Record<string, unknown>)[`${n} ${form}`] = { wallMs: per(s.wall), cpuMs: per(s.cpu), mainThreadMs: per(s.busy) };
    }
  }
  printTable(["records", "form", "wall ms / txn", "process CPU ms", "main thread ms", "wall us / record", "main thread us / record"], rows);
  console.log(`result: ${saveResult("kafkajs-patch", result)}`);
  for (const f of forms.values()) await f.close();
  await admin.disconnect();
} finally {
  broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
