/**
 * Loading encryption keys: the list format, where keys come from, and one clear error per bad input
 * that names the key id and its source but never key bytes; a client or worker whose keys cannot be
 * loaded fails before it connects.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseConfig } from "../../../core/config/schema.js";
import { loadKeyRing, parseKeyRing } from "../../../security/key-ring.js";
import { EncryptionKeyError } from "../../../security/errors.js";
import { SageClient } from "../../../client/sage-client.js";
import { createSageWorker } from "../../../worker/sage-worker.js";
import { createLogger } from "../../../client/logger.js";
import { definePipeline } from "../../../core/api/pipeline.js";
import { PrintSink } from "../../../core/api/connectors.js";
import { newKey } from "./keys.js";

const dir = mkdtempSync(join(tmpdir(), "sage-keys-"));

function keyError(message: RegExp, ...secrets: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof EncryptionKeyError, String(err));
    assert.equal(err.input, true);
    assert.match(err.message, message);
    for (const s of secrets) assert.ok(!err.message.includes(s), "the message never holds key bytes");
    return true;
  };
}

test("a key list: comments, blank lines, commas; the first key is active unless active-key names another", () => {
  const [a, b, c] = [newKey(), newKey(), newKey()];
  const ring = parseKeyRing(`# rotated 2026-01\nk-2026=${b}\n\nk-2025=${a}, k-2024=${c}\n`, "file /etc/sage/keys");
  assert.equal(ring.active.id, "k-2026");
  assert.deepEqual([...ring.keys.keys()], ["k-2026", "k-2025", "k-2024"]);
  assert.equal(ring.keys.get("k-2024")!.origin, "file /etc/sage/keys, line 4");
  assert.equal(parseKeyRing(`k1=${a}\nk2=${b}`, "file f", "k2").active.id, "k2");
  // base64url is accepted too (some tools print it)
  const url = randomBytes(32).toString("base64url");
  assert.equal(parseKeyRing(`k=${url}`, "file f").active.key.symmetricKeySize, 32);
});

test("bad key lists: one error each, naming the entry and its source, never the key", () => {
  const short = randomBytes(16).toString("base64");
  assert.throws(() => parseKeyRing(`k1=${short}`, "file /k"), keyError(/encryption key "k1" \(file \/k, line 1\) is 16 bytes; AES-256 needs 32/, short));
  const key = newKey();
  assert.throws(() => parseKeyRing(`${key}`, "file /k"), keyError(/file \/k, line 1 is not "key-id=<base64 key>"/, key));
  assert.throws(() => parseKeyRing(`bad id=${key}`, "environment variable K"), keyError(/environment variable K, entry 1 is not/, key));
  assert.throws(() => parseKeyRing(`k1=${key}\nk1=${newKey()}`, "file /k"), keyError(/"k1" is listed twice \(file \/k, line 1 and file \/k, line 2\)/, key));
  assert.throws(() => parseKeyRing("# nothing here\n", "file /k"), keyError(/file \/k holds no encryption keys/));
  assert.throws(() => parseKeyRing(`k1=${key}`, "file /k", "k9"), keyError(/active-key = "k9" is not among the keys of file \/k \(k1\)/, key));
});

test("keys come from the file or the environment variable the config names", () => {
  const key = newKey();
  const file = join(dir, "keys");
  writeFileSync(file, `k1=${key}\n`, { mode: 0o600 });
  const fromFile = loadKeyRing(parseConfig({ security: { encryption: { "keys-file": file } } }).security.encryption, {});
  assert.equal(fromFile?.source, `file ${file}`);
  const fromEnv = loadKeyRing(parseConfig({ security: { encryption: { "keys-env": "APP_KEYS", "active-key": "k2" } } }).security.encryption, {
    APP_KEYS: `k1=${key},k2=${newKey()}`,
  });
  assert.equal(fromEnv?.active.id, "k2");
  assert.equal(fromEnv?.source, "environment variable APP_KEYS");
  assert.equal(loadKeyRing(parseConfig({}).security.encryption, {}), null, "no key source: encryption off");
});

test("a key source that cannot be used is one clear error", () => {
  const enc = (e: Record<string, string>) => parseConfig({ security: { encryption: e } }).security.encryption;
  assert.throws(
    () => loadKeyRing(enc({ "keys-file": join(dir, "missing") }), {}),
    keyError(/cannot read the encryption keys file ".*missing" \(security\.encryption\.keys-file\): ENOENT/),
  );
  assert.throws(() => loadKeyRing(enc({ "keys-env": "NOPE" }), {}), keyError(/names the environment variable NOPE, which is not set or empty/));
  assert.throws(() => loadKeyRing(enc({ "keys-env": "K", "keys-file": "/k" }), {}), keyError(/names both keys-file and keys-env/));
  assert.throws(() => loadKeyRing(enc({ "active-key": "k1" }), {}), keyError(/active-key = "k1" is set, but no keys-file or keys-env/));
});

test("a client or a worker whose keys cannot be loaded fails before it connects or starts anything", async () => {
  // Nothing listens at this address: a client that connected first would fail with "no Temporal server answers".
  const config = parseConfig({ temporal: { address: "127.0.0.1:1" }, security: { encryption: { "keys-file": join(dir, "absent") } } });
  await assert.rejects(SageClient.connect({ config }), keyError(/cannot read the encryption keys file/));
  const pipeline = definePipeline("keys-unit", (env) => env.fromCollection([1]).sink(PrintSink.stdout()));
  await assert.rejects(createSageWorker({ pipeline, config, logger: createLogger("silent") }), keyError(/cannot read the encryption keys file/));
});
