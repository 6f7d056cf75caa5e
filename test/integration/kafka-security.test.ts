/**
 * Kafka security against a broker of this file's own: a SASL_SSL listener (SCRAM-SHA-512 and PLAIN
 * users) and a TLS listener that requires a client certificate, all certificates made by the JDK's
 * keytool. A streaming job runs end to end over SASL_SSL; PLAIN and a client certificate work for
 * the admin, producer, reader and our own wire connection; a wrong password, a missing file and an
 * expired or absent certificate each give one clear error, and no job starts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WorkflowNotFoundError } from "@temporalio/client";
import { freePort } from "../../dev/temporal-server.js";
import { startBroker, type Broker, type BrokerTlsFiles } from "../../dev/kafka-broker.js";
import { kafkaClientOf } from "../../connectors/kafka/index.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { KafkaAuthenticationError, KafkaTlsError } from "../../connectors/kafka/client.js";
import { ConfigError } from "../../core/errors.js";
import { SageClient } from "../../client/sage-client.js";
import { sageCli, scratchDir } from "../support/harness.js";
import {
  STREAM_FIXTURE,
  assertExactlyOnceInOrder,
  createTopics,
  produceRange,
  runStreaming,
  streamCliEnv,
  streamConfig,
  streamTopics,
  useStreamTopics,
  waitForRecords,
} from "../support/kafka.js";
import pipeline from "../fixtures/stream-pipeline.js";

const USER = "sage-job";
const PLAIN_USER = "sage-plain";
const PASSWORD = randomBytes(12).toString("hex");
const PASSWORD_ENV = "SAGE_TEST_KAFKA_PASSWORD";
const N = 3_000;

let broker: Broker;
let tls: BrokerTlsFiles;

before(async () => {
  const [port, controllerPort, saslPort, sslPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  broker = startBroker({
    port,
    controllerPort,
    dataDir: join(scratchDir("kafka-security"), "kafka"),
    heapMb: 256,
    security: { saslPort, sslPort, users: { [USER]: PASSWORD, [PLAIN_USER]: PASSWORD } },
  });
  tls = broker.tls!;
  process.env[PASSWORD_ENV] = PASSWORD;
});

after(() => broker?.stop());

/** A streaming test config on the SASL_SSL listener, SCRAM-SHA-512 unless overridden. */
function saslConfig(label: string, dlq: string, overrides: Record<string, unknown> = {}) {
  return streamConfig(label, dlq, {
    "kafka.brokers": broker.saslAddress!,
    "kafka.ssl.ca": tls.ca,
    "kafka.sasl.mechanism": "scram-sha-512",
    "kafka.sasl.username": USER,
    "kafka.sasl.password-env": PASSWORD_ENV,
    ...overrides,
  });
}

/** The same settings as a `sage` child's environment. */
function saslCliEnv(config: ReturnType<typeof saslConfig>, t: { env: Record<string, string> }, password: string): Record<string, string> {
  return {
    ...streamCliEnv(config, t),
    SAGE_KAFKA_SSL_CA: tls.ca,
    SAGE_KAFKA_SASL_MECHANISM: "scram-sha-512",
    SAGE_KAFKA_SASL_USERNAME: USER,
    SAGE_KAFKA_SASL_PASSWORD_ENV: PASSWORD_ENV,
    [PASSWORD_ENV]: password,
  };
}

/** Asserts that no partition workflow of `jobId` exists: nothing was half-started. */
async function assertNoJob(config: ReturnType<typeof saslConfig>, jobId: string): Promise<void> {
  const client = await SageClient.connect({ config });
  try {
    for (const p of ["p0", "p1"]) {
      await assert.rejects(client.temporal.workflow.getHandle(`sage/streamtest/${jobId}/${p}`).describe(), WorkflowNotFoundError);
    }
  } finally {
    await client.close();
  }
}

test("a streaming job over SASL_SSL with SCRAM-SHA-512: every record exactly once", async () => {
  const t = streamTopics("sasl-job");
  useStreamTopics(t);
  const config = saslConfig("sasl-job", t.dlq, { "execution.parallelism": 2 });
  const kafka = kafkaClientOf(config);
  await createTopics(kafka, t, 2);
  await produceRange(kafka, t.input, 0, N);
  const run = await runStreaming(pipeline, config, "sasl-job");
  try {
    await waitForRecords(run.job, N);
    const result = await run.finish();
    assert.equal(result.counts["out"]!.out, N);
    await assertExactlyOnceInOrder(t.output, N, kafka);
  } finally {
    await run.close();
  }
});

test("PLAIN over SASL_SSL and a client certificate over TLS: topics, writes, reads and the stable-offsets lookup work", async () => {
  const t = streamTopics("plain-mtls");
  const configs = {
    plain: saslConfig("plain", t.dlq, { "kafka.sasl.mechanism": "plain", "kafka.sasl.username": PLAIN_USER }),
    mtls: streamConfig("mtls", t.dlq, { "kafka.brokers": broker.sslAddress!, "kafka.ssl.ca": tls.ca, "kafka.ssl.cert": tls.cert, "kafka.ssl.key": tls.key }),
  };
  for (const [name, config] of Object.entries(configs)) {
    const kafka = kafkaClientOf(config);
    const topic = `${t.input}.${name}`;
    const admin = await kafka.admin();
    try {
      await admin.ensureTopic(topic, 1);
      const producer = await kafka.producer();
      await producer.send(topic, [{ key: "k", value: name }]);
      await producer.close();
      assert.deepEqual(
        (await kafka.readAll(topic)).map((m) => m.value?.toString()),
        [name],
      );
      // Our own connection (OffsetFetch with require_stable) authenticates the same way.
      assert.deepEqual(await admin.committedOffsets(`${t.group}.${name}`, topic, [0], 5_000), new Map());
    } finally {
      await admin.close();
    }
  }
});

test("a wrong SASL password: one error naming the mechanism and the user, at once, and no job started", async () => {
  const t = streamTopics("wrong-password");
  const config = saslConfig("wrong-password", t.dlq);
  await createTopics(kafkaClientOf(config), t, 2);
  await produceRange(kafkaClientOf(config), t.input, 0, 100);
  const wrong = "not-the-password";
  process.env.SAGE_TEST_WRONG_PASSWORD = wrong;
  const bad = saslConfig("wrong-password", t.dlq, { "kafka.sasl.password-env": "SAGE_TEST_WRONG_PASSWORD" });
  await assert.rejects(kafkaClientOf(bad).admin(), (err: unknown) => {
    assert.ok(err instanceof KafkaAuthenticationError, String(err));
    assert.equal(err.mechanism, "SCRAM-SHA-512");
    assert.equal(err.username, USER);
    assert.equal(err.retriable, false);
    return true;
  });
  // Every client path checks the same way: a shim's consumer never joins the group.
  await assert.rejects(
    kafkaClientOf(bad)
      .consumer({
        groupId: t.group,
        topics: [t.input],
        fromBeginning: true,
        maxWaitMs: 100,
        minBytes: 1,
        maxBytesPerPartition: 1 << 20,
        concurrency: 1,
        sessionTimeoutMs: 6_000,
      })
      .start(async () => undefined),
    KafkaAuthenticationError,
  );
  const cli = sageCli(["shim", STREAM_FIXTURE, "--job-id", "wrong-password"], { env: saslCliEnv(config, t, wrong), timeoutMs: 60_000 });
  assert.equal(cli.code, 2, cli.stderr);
  const lines = cli.stderr.trim().split("\n");
  assert.equal(lines.length, 1, cli.stderr);
  assert.match(lines[0]!, /refused SASL SCRAM-SHA-512 authentication of user "sage-job"/);
  assert.ok(!cli.stderr.includes(wrong), "the password is not printed");
  await assertNoJob(config, "wrong-password");
  const admin = await kafkaClientOf(config).admin();
  try {
    assert.deepEqual(await admin.committedOffsets(t.group, t.input, [0, 1], 5_000), new Map(), "the group committed nothing");
  } finally {
    await admin.close();
  }
});

test("a missing or expired certificate: one error naming the file, before anything connects", async () => {
  const t = streamTopics("bad-cert");
  const missing = join(scratchDir("bad-cert"), "no-such-ca.pem");
  assert.throws(
    () => kafkaClientOf(saslConfig("missing-ca", t.dlq, { "kafka.ssl.ca": missing })),
    (err: unknown) => err instanceof ConfigError && err.message === `kafka.ssl.ca = "${missing}": cannot read the file (ENOENT)`,
  );
  const expired = streamConfig("expired", t.dlq, {
    "kafka.brokers": broker.sslAddress!,
    "kafka.ssl.ca": tls.ca,
    "kafka.ssl.cert": tls.expiredCert,
    "kafka.ssl.key": tls.key,
  });
  assert.throws(
    () => kafkaClientOf(expired),
    (err: unknown) => err instanceof ConfigError && err.message.startsWith(`kafka.ssl.cert = "${tls.expiredCert}": the certificate CN=sage-client expired on `),
  );
  // The same through the CLI: exit 2, one line naming the file, no job.
  const cli = sageCli(["shim", STREAM_FIXTURE, "--job-id", "bad-cert"], {
    env: { ...saslCliEnv(saslConfig("bad-cert", t.dlq), t, PASSWORD), SAGE_KAFKA_SSL_CA: missing },
    timeoutMs: 60_000,
  });
  assert.equal(cli.code, 2, cli.stderr);
  assert.equal(cli.stderr.trim(), `sage: kafka.ssl.ca = "${missing}": cannot read the file (ENOENT)`);
  await assertNoJob(saslConfig("bad-cert", t.dlq), "bad-cert");
  // A streaming worker says the same before it polls, rather than failing its first unit.
  const worker = sageCli(["worker", STREAM_FIXTURE], {
    env: { ...saslCliEnv(saslConfig("bad-cert-worker", t.dlq), t, PASSWORD), SAGE_KAFKA_SSL_CA: missing },
    timeoutMs: 60_000,
  });
  assert.equal(worker.code, 2, worker.stderr);
  assert.equal(worker.stderr.trim().split("\n").pop(), `sage: kafka.ssl.ca = "${missing}": cannot read the file (ENOENT)`);
  // Past our own check, the broker refuses the expired certificate: said at once, naming the file.
  const presented = createKafkajsClient({
    brokers: [broker.sslAddress!],
    security: {
      ssl: { ca: readFileSync(tls.ca), cert: readFileSync(tls.expiredCert), key: readFileSync(tls.key) },
      files: { ca: tls.ca, cert: tls.expiredCert, key: tls.key },
    },
  });
  await assert.rejects(
    presented.admin(),
    (err: unknown) => err instanceof KafkaTlsError && err.message.includes(`refused the TLS client certificate, kafka.ssl.cert = "${tls.expiredCert}"`),
  );
  // No client certificate at all, and no CA to trust the broker's: each said, not retried for half a minute.
  const noCert = kafkaClientOf(streamConfig("no-cert", t.dlq, { "kafka.brokers": broker.sslAddress!, "kafka.ssl.ca": tls.ca }));
  await assert.rejects(
    noCert.admin(),
    (err: unknown) => err instanceof KafkaTlsError && /refused the TLS client certificate, no client certificate/.test(err.message),
  );
  const untrusted = kafkaClientOf(saslConfig("untrusted", t.dlq, { "kafka.ssl.ca": undefined, "kafka.ssl.enabled": true }));
  await assert.rejects(untrusted.admin(), (err: unknown) => err instanceof KafkaTlsError && /is not trusted, kafka\.ssl\.ca not set/.test(err.message));
});
