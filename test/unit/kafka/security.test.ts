/** `kafka.ssl` and `kafka.sasl` read into a client's security: files and passwords checked once, each failure naming its key. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../../core/config/schema.js";
import { ConfigError } from "../../../core/errors.js";
import { DEFAULT_PASSWORD_ENV, kafkaSecurityOf } from "../../../connectors/kafka/security.js";

/** A certificate valid through January 2025 only (made with keytool -startdate 2025/01/01 -validity 31). */
const CERT = join(import.meta.dirname, "..", "..", "fixtures", "kafka", "january-2025.pem");
const IN_JANUARY = new Date("2025-01-15T00:00:00Z");
const dir = mkdtempSync(join(tmpdir(), "kafka-security-"));
const KEY = join(dir, "key.pem");
writeFileSync(KEY, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n");

const kafka = (k: Record<string, unknown>) => parseConfig({ kafka: k });
const configError = (pattern: RegExp) => (err: unknown) => err instanceof ConfigError && pattern.test(err.message);

test("no ssl and no sasl: a plaintext client", () => {
  assert.deepEqual(kafkaSecurityOf(kafka({}), {}), {});
});

test("ssl: true, or files: read, and their certificates checked for dates", () => {
  assert.deepEqual(kafkaSecurityOf(kafka({ ssl: true }), {}).ssl, {});
  assert.deepEqual(kafkaSecurityOf(kafka({ ssl: "true" }), {}).ssl, {});
  const s = kafkaSecurityOf(kafka({ ssl: { ca: CERT, cert: CERT, key: KEY, "server-name": "broker.local" } }), {}, IN_JANUARY);
  assert.ok(Buffer.isBuffer(s.ssl?.ca) && Buffer.isBuffer(s.ssl?.cert) && Buffer.isBuffer(s.ssl?.key));
  assert.equal(s.ssl?.servername, "broker.local");
  assert.deepEqual(s.files, { ca: CERT, cert: CERT, key: KEY });
  assert.throws(
    () => kafkaSecurityOf(kafka({ ssl: { cert: CERT, key: KEY } }), {}, new Date("2025-03-01T00:00:00Z")),
    configError(new RegExp(`^kafka\\.ssl\\.cert = "${CERT}": the certificate CN=sage-fixture expired on 2025-02-01T`)),
  );
  assert.throws(
    () => kafkaSecurityOf(kafka({ ssl: { ca: CERT } }), {}, new Date("2024-12-01T00:00:00Z")),
    configError(/^kafka\.ssl\.ca = ".*": the certificate CN=sage-fixture is valid only from 2025-01-01T/),
  );
});

test("ssl files missing, not certificates, or a certificate without its key", () => {
  const missing = join(dir, "missing.pem");
  assert.throws(
    () => kafkaSecurityOf(kafka({ ssl: { ca: missing } }), {}),
    configError(new RegExp(`^kafka\\.ssl\\.ca = "${missing}": cannot read the file \\(ENOENT\\)$`)),
  );
  assert.throws(() => kafkaSecurityOf(kafka({ ssl: { ca: KEY } }), {}), configError(/^kafka\.ssl\.ca = ".*key\.pem": holds no PEM certificate/));
  assert.throws(() => kafkaSecurityOf(kafka({ ssl: { cert: CERT } }), {}, IN_JANUARY), configError(/needs both cert and key \(got only cert\)/));
});

test("sasl: the password from the default variable, a named one, or a file; never the config file", () => {
  const user = { mechanism: "scram-sha-512", username: "job" };
  assert.deepEqual(kafkaSecurityOf(kafka({ sasl: user }), { [DEFAULT_PASSWORD_ENV]: "s1" }).sasl, { ...user, password: "s1" });
  assert.equal(kafkaSecurityOf(kafka({ sasl: { ...user, "password-env": "MY_PW" } }), { MY_PW: "s2" }).sasl?.password, "s2");
  const file = join(dir, "password");
  writeFileSync(file, "s3\n");
  assert.equal(kafkaSecurityOf(kafka({ sasl: { ...user, "password-file": file } }), {}).sasl?.password, "s3");
  assert.throws(() => parseConfig({ kafka: { sasl: { ...user, password: "clear" } } }), /unknown config key "kafka\.sasl\.password"/);
});

test("sasl settings that cannot work say which key is missing", () => {
  assert.throws(
    () => kafkaSecurityOf(kafka({ sasl: { mechanism: "plain", username: "job", "password-env": "NOPE" } }), {}),
    configError(/no password for user "job": the environment variable NOPE is not set/),
  );
  assert.throws(() => kafkaSecurityOf(kafka({ sasl: { mechanism: "plain" } }), {}), configError(/needs kafka\.sasl\.username/));
  assert.throws(() => kafkaSecurityOf(kafka({ sasl: { username: "job" } }), {}), configError(/no kafka\.sasl\.mechanism/));
  assert.throws(
    () => kafkaSecurityOf(kafka({ sasl: { mechanism: "plain", username: "job", "password-file": join(dir, "none") } }), {}),
    configError(/password-file = ".*none": cannot read the file \(ENOENT\)/),
  );
  assert.throws(() => parseConfig({ kafka: { sasl: { mechanism: "gssapi" } } }), /kafka\.sasl\.mechanism/);
});
