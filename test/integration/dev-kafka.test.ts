/** `sage dev --kafka`: the dev server and a Kafka broker beside it, both stopped by Ctrl-C. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:net";
import { freePort } from "../../dev/temporal-server.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { sageCliBackground, scratchDir, until } from "../support/harness.js";

function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), done(true)));
    s.once("error", () => done(false));
  });
}

test("sage dev --kafka starts a broker that takes transactions beside the dev server, and Ctrl-C stops both", async () => {
  const dir = scratchDir("dev-kafka");
  const [temporalPort, kafkaPort, uiPort] = [await freePort(), await freePort(), await freePort()];
  const child = sageCliBackground(["dev", "--headless", "--kafka"], {
    env: {
      SAGE_TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      SAGE_TEMPORAL_UI_PORT: String(uiPort),
      SAGE_KAFKA_BROKERS: `127.0.0.1:${kafkaPort}`,
      SAGE_DATA_DIR: dir,
    },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = once(child, "exit");
  try {
    await until("the broker to be ready", async () => (/Kafka broker ready at 127\.0\.0\.1:\d+/.test(out) ? true : undefined), 180_000);
    assert.match(out, /Temporal dev server ready/);
    const kafka = createKafkajsClient({ brokers: [`127.0.0.1:${kafkaPort}`] });
    const admin = await kafka.admin();
    await admin.ensureTopic("dev.check", 1);
    await admin.close();
    const producer = kafka.transactionalProducer("dev-check");
    const txn = await producer.begin();
    await txn.send([{ topic: "dev.check", message: { key: "k", value: "v" } }]);
    await txn.sendOffsets({ group: "dev-check", positions: [{ topic: "dev.check", partition: 0, nextOffset: "1" }] });
    await txn.commit();
    await producer.close();
    assert.deepEqual(
      (await kafka.readAll("dev.check")).map((m) => m.value?.toString()),
      ["v"],
    );
    child.kill("SIGINT");
    await exited;
    assert.equal(await listening(kafkaPort), false, "the broker stopped");
    assert.equal(await listening(temporalPort), false, "the dev server stopped");
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});
