/**
 * CPU of the Kafka sink's path in one process, per record: what a worker spends to write a unit's
 * outputs in a transaction (partitioning, chunks, kafkajs's produce encoding, the transaction's
 * requests), without Temporal, the shim or the chain. Records like the kafka bench's sink writes
 * (keyed, ~200 bytes of JSON, a lineage header, the source timestamp), one transaction per unit of
 * `--unit` records over 4 partitions, one lineage line on a topic of its own, and the offsets.
 * `--roots a,b` and `--clients kafkajs,confluent` run each client of each checkout in turn, round by
 * round, in this one process (so before and after share the broker, the machine's load and the JIT's
 * state), and print each one's CPU µs per record (user + system of this process, median over
 * rounds; robust to load where records/s is not) and its transactions' p50 / p99 ms (small units
 * show a transaction's round trips, as at 1k records/s). Not part of CI:
 *
 *   npx tsx bench/sink-path.ts [--roots .,/path/to/other/checkout] [--clients kafkajs,confluent]
 *                              [--records 150000] [--unit 1500] [--rounds 5]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { freePort } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import type { KafkaClient, OutgoingMessage } from "../connectors/kafka/client.js";
import { machineLine, printTable } from "./machine.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const ROOTS = arg("roots", ".").split(",");
const CLIENTS = arg("clients", "kafkajs").split(",");
/** Each client of each checkout. */
const VARIANTS = ROOTS.flatMap((root) => CLIENTS.map((client) => ({ root, client, name: `${root} (${client})` })));
const RECORDS = Number(arg("records", "150000"));
const UNIT = Number(arg("unit", "1500"));
const ROUNDS = Number(arg("rounds", "5"));
const PAD = "x".repeat(120);

/** The messages of one unit, as the bench pipeline's Kafka sink makes them. */
function unitMessages(first: number): Array<{ topic: string; message: OutgoingMessage }> {
  const out: Array<{ topic: string; message: OutgoingMessage }> = [];
  for (let id = first; id < first + UNIT; id++) {
    const key = `k${id % 101}`;
    const value = JSON.stringify({ id, key, sentAt: Date.now(), amount: (id * 7) % 1000, payload: PAD, tier: "small" });
    out.push({
      topic: "sink-path.out",
      message: { key, value, headers: { "sage-lineage": `sink-path.in[0]@${id}|s0.p0.${first}` }, timestamp: String(Date.now()) },
    });
  }
  out.push({
    topic: "sink-path.lineage",
    message: { key: `s0.p0.${first}`, value: JSON.stringify({ batch: `s0.p0.${first}`, slices: [`sink-path.in[0]@${first}`] }) },
  });
  return out;
}

/** CPU seconds (user + system) of this process while `work` runs. */
async function cpuOf(work: () => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}

async function main(): Promise<void> {
  console.log(`sink path: ${RECORDS} records per round in units of ${UNIT}, ${ROUNDS} rounds, ${VARIANTS.map((v) => v.name).join(", ")}; ${machineLine()}`);
  const dir = mkdtempSync(join(tmpdir(), "sage-sink-path-"));
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
  const clients: KafkaClient[] = [];
  try {
    for (const { root, client } of VARIANTS) {
      const file = client === "confluent" ? "connectors/kafka/confluent-client.ts" : "connectors/kafka/kafkajs-client.ts";
      const mod = (await import(pathToFileURL(resolve(root, file)).href)) as Record<string, (o: { brokers: string[] }) => KafkaClient>;
      const create = client === "confluent" ? mod.createConfluentClient : mod.createKafkajsClient;
      clients.push(create!({ brokers: [broker.address] }));
    }
    const admin = await clients[0]!.admin();
    await admin.ensureTopic("sink-path.lineage", 1);
    await admin.ensureTopic("sink-path.out", 4);
    await admin.ensureTopic("sink-path.in", 1);
    await admin.close();
    const cpu: number[][] = VARIANTS.map(() => []);
    const wall: number[][] = VARIANTS.map(() => []);
    const txnMs: number[][] = VARIANTS.map(() => []);
    const producers = clients.map((c, i) => c.transactionalProducer(`sink-path-${i}`));
    // One unit each first: connections, metadata and the JIT's first compile are not per record.
    for (const p of producers) {
      const t = await p.begin();
      await t.send(unitMessages(0));
      await t.commit();
    }
    let offset = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, producer] of producers.entries()) {
        const t0 = performance.now();
        cpu[i]!.push(
          await cpuOf(async () => {
            for (let n = 0; n < RECORDS; n += UNIT) {
              const messages = unitMessages(n);
              const began = performance.now();
              const t = await producer.begin();
              await t.send(messages);
              offset += UNIT;
              await t.sendOffsets({ group: `sink-path-${i}`, positions: [{ topic: "sink-path.in", partition: 0, nextOffset: String(offset) }] });
              await t.commit();
              txnMs[i]!.push(performance.now() - began);
            }
          }),
        );
        wall[i]!.push((performance.now() - t0) / 1000);
      }
    }
    const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
    printTable(
      ["variant", "CPU µs per record (median)", "per round", "records/s (median)", "transaction p50 / p99 ms"],
      VARIANTS.map((v, i) => [
        v.name,
        ((quantile(cpu[i]!, 0.5) * 1e6) / RECORDS).toFixed(2),
        cpu[i]!.map((c) => ((c * 1e6) / RECORDS).toFixed(1)).join(" "),
        String(Math.round(RECORDS / quantile(wall[i]!, 0.5))),
        `${quantile(txnMs[i]!, 0.5).toFixed(1)} / ${quantile(txnMs[i]!, 0.99).toFixed(1)}`,
      ]),
    );
    await Promise.all(producers.map((p) => p.close()));
  } finally {
    broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
