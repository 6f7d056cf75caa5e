/**
 * The three-broker fault of the keyed chaos run: the job runs on a cluster of three KRaft brokers
 * of its own (replication factor 3, min.insync.replicas 2, internal topics too); kill -9 of the
 * broker that leads the most of the job's partitions, so that leaders (and maybe the group and
 * transaction coordinators) move; `downSeconds` on two brokers, then its restart on its data dir.
 */
import { join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import { freePort } from "../../dev/temporal-server.js";
import { startCluster, type Cluster } from "../../dev/kafka-broker.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { sleep, waitFor, type ChaosEnv } from "./env.js";
import type { KeyedFault, KeyedKafka } from "./keyed-run.js";

/** Partition leaders (node ids) and in-sync replica counts of `topics`. */
async function layout(brokers: string, topics: string[]): Promise<Array<{ leader: number; isr: number }>> {
  const admin = new Kafka({ clientId: "chaos-cluster-layout", brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const { topics: meta } = await admin.fetchTopicMetadata({ topics });
    return meta.flatMap((t) => t.partitions.map((p) => ({ leader: p.leader, isr: p.isr.length })));
  } finally {
    await admin.disconnect();
  }
}

/** kill -9 of the broker leading most of the job's partitions, `downSeconds` on two, its restart. */
export function brokerKill(downSeconds: number): KeyedFault {
  let cluster: Cluster | null = null;
  return {
    name: "broker-kill",
    summary: `three brokers (RF 3, min ISR 2): kill -9 of the one leading most of the job's partitions, ${downSeconds} s on two, restart`,
    async kafka(env: ChaosEnv): Promise<KeyedKafka> {
      const ports = [await freePort(), await freePort(), await freePort()];
      const controllerPorts = [await freePort(), await freePort(), await freePort()];
      env.log("starting three Kafka brokers");
      cluster = startCluster({ ports, controllerPorts, dataDir: join(env.dir, "kafka-cluster"), heapMb: 256 });
      const client = createKafkajsClient({ brokers: cluster.brokers.split(","), clientId: "chaos-cluster", replicationFactor: 3 });
      return { broker: cluster.nodes[0]!, brokers: cluster.brokers, client, replicationFactor: 3 };
    },
    async inject(run) {
      if (!cluster) throw new Error("broker-kill: the cluster did not start");
      const c = cluster;
      const topics = run.topics ?? [];
      const counts = new Map<number, number>();
      for (const p of await layout(c.brokers, topics)) counts.set(p.leader, (counts.get(p.leader) ?? 0) + 1);
      const [victimId, led] = [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]!;
      const victim = c.nodes[victimId - 1]!;
      const killedAt = Date.now();
      victim.kill();
      const others = c.nodes
        .filter((n) => n !== victim)
        .map((n) => n.address)
        .join(",");
      const movedSeconds = await waitFor(
        "the killed broker's partitions to have new leaders",
        async () => ((await layout(others, topics).catch(() => null))?.every((p) => p.leader !== victimId) ? (Date.now() - killedAt) / 1000 : undefined),
        120_000,
        500,
      );
      await sleep(Math.max(0, killedAt + downSeconds * 1000 - Date.now()));
      const restartAt = Date.now();
      await victim.relaunch();
      return {
        victim: victimId,
        ledPartitions: led,
        ofPartitions: [...counts.values()].reduce((a, b) => a + b, 0),
        newLeadersAfterSeconds: movedSeconds,
        downSeconds: (restartAt - killedAt) / 1000,
        restartSeconds: (Date.now() - restartAt) / 1000,
      };
    },
    release() {
      cluster?.stop();
      cluster = null;
    },
  };
}
