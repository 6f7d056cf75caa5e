/** The coordinator cache of kafkajs transactional producers: what it reuses, what it asks again, and the kafkajs internal it needs. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { KafkajsInternalsError, rememberCoordinators } from "../../../connectors/kafka/coordinator-cache.js";

/** A stand-in for a kafkajs `Kafka`: its private cluster factory makes clusters whose lookups are counted. */
function fakeKafka(answer: (groupId: string) => Promise<{ isConnected(): boolean }>) {
  const lookups: string[] = [];
  const factory = Symbol("private:Kafka:createCluster");
  const kafka = {
    [factory]: () => ({
      findGroupCoordinator: (q: { groupId: string; coordinatorType?: number }) => {
        lookups.push(`${q.coordinatorType ?? 0}:${q.groupId}`);
        return answer(q.groupId);
      },
    }),
  };
  const cluster = () =>
    (kafka as unknown as Record<symbol, () => { findGroupCoordinator(q: { groupId: string; coordinatorType?: number }): Promise<{ isConnected(): boolean }> }>)[
      factory
    ]!();
  return { kafka: kafka as unknown as Kafka, lookups, cluster };
}

test("a connected coordinator is asked for once per id and type, per cluster", async () => {
  const broker = { isConnected: () => true };
  const fake = fakeKafka(() => Promise.resolve(broker));
  rememberCoordinators(fake.kafka);
  const cluster = fake.cluster();
  for (let i = 0; i < 3; i++) assert.equal(await cluster.findGroupCoordinator({ groupId: "tx", coordinatorType: 1 }), broker);
  await cluster.findGroupCoordinator({ groupId: "group" });
  await cluster.findGroupCoordinator({ groupId: "tx" });
  assert.deepEqual(fake.lookups, ["1:tx", "0:group", "0:tx"]);
  await fake.cluster().findGroupCoordinator({ groupId: "tx", coordinatorType: 1 });
  assert.equal(fake.lookups.length, 4, "another cluster (another producer) asks for itself");
});

test("a disconnected coordinator, a failed lookup and an expired one are asked for again", async () => {
  let connected = true;
  let fail = false;
  const fake = fakeKafka(() => (fail ? Promise.reject(new Error("no coordinator")) : Promise.resolve({ isConnected: () => connected })));
  rememberCoordinators(fake.kafka);
  const cluster = fake.cluster();
  await cluster.findGroupCoordinator({ groupId: "tx" });
  connected = false;
  await cluster.findGroupCoordinator({ groupId: "tx" });
  assert.equal(fake.lookups.length, 2);
  connected = true;
  fail = true;
  await assert.rejects(cluster.findGroupCoordinator({ groupId: "other" }), /no coordinator/);
  fail = false;
  await cluster.findGroupCoordinator({ groupId: "other" });
  assert.equal(fake.lookups.length, 4);

  const expiring = fakeKafka(() => Promise.resolve({ isConnected: () => true }));
  rememberCoordinators(expiring.kafka, 0);
  const c = expiring.cluster();
  await c.findGroupCoordinator({ groupId: "tx" });
  await c.findGroupCoordinator({ groupId: "tx" });
  assert.equal(expiring.lookups.length, 2);
});

test("the installed kafkajs has the cluster factory the cache wraps; an object without it is refused", () => {
  assert.doesNotThrow(() => rememberCoordinators(new Kafka({ brokers: ["127.0.0.1:1"], logLevel: logLevel.NOTHING })));
  assert.throws(() => rememberCoordinators({} as Kafka), KafkajsInternalsError);
});
