/** Key bytes in the configuration are refused, naming the key and where it came from, never the value. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseConfig } from "../../../core/config/schema.js";
import { ConfigError } from "../../../core/errors.js";
import { loadConfig } from "../../../client/config-loader.js";

function refused(where: RegExp, secret: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, /key material does not belong in the configuration/);
    assert.match(err.message, where);
    assert.match(err.message, /security\.encryption\.keys-file/, "says where keys go instead");
    assert.ok(!err.message.includes(secret), "the message never repeats the key");
    return true;
  };
}

test("a key under security.encryption, or a setting whose value is a key, is refused", () => {
  const b64 = randomBytes(32).toString("base64");
  const hex = randomBytes(32).toString("hex");
  const origins = new Map([["security.encryption.key", "sage.config.yaml"]]);
  assert.throws(() => parseConfig({ security: { encryption: { key: b64 } } }, origins), refused(/security\.encryption\.key \(from sage\.config\.yaml\)/, b64));
  assert.throws(() => parseConfig({ security: { encryption: { keys: { k1: b64 } } } }), refused(/security\.encryption\.keys\b/, b64));
  assert.throws(() => parseConfig({ security: { encryption: { "keys-file": b64 } } }), refused(/security\.encryption\.keys-file/, b64));
  const slash = `/${b64.slice(1)}`; // a key that happens to start like a path
  assert.throws(() => parseConfig({ security: { encryption: { "keys-file": slash } } }), refused(/security\.encryption\.keys-file/, slash));
  assert.throws(() => parseConfig({ security: { encryption: { "active-key": hex } } }), refused(/security\.encryption\.active-key/, hex));
  assert.throws(() => parseConfig({ security: { encryption: { "keys-env": `k1=${b64}` } } }), refused(/security\.encryption\.keys-env/, b64));
});

test("an environment variable holding a key where a key id belongs is refused, naming the variable", () => {
  const b64 = randomBytes(32).toString("base64");
  assert.throws(
    () => loadConfig({ env: { SAGE_SECURITY_ENCRYPTION_ACTIVE_KEY: b64 } }),
    refused(/active-key \(from environment variable SAGE_SECURITY_ENCRYPTION_ACTIVE_KEY\)/, b64),
  );
});

test("paths, variable names and key ids are accepted; a typo is an unknown key, not key material", () => {
  const c = parseConfig({ security: { encryption: { "keys-file": "/etc/sage/Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy", "active-key": "k-2026.01" } } });
  assert.equal(c.security.encryption["active-key"], "k-2026.01");
  assert.equal(parseConfig({ security: { encryption: { "keys-env": "SAGE_KEYS" } } }).security.encryption["keys-env"], "SAGE_KEYS");
  assert.throws(() => parseConfig({ security: { encryption: { "keys-flie": "/k" } } }), /unknown config key "security\.encryption\.keys-flie"/);
  assert.equal(parseConfig({}).security["codec-server"].port, 8888);
});
