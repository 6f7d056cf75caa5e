/** The AES-256-GCM payload codec: round trip, key rotation, wrong key, missing key id, tampering, size overhead. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultPayloadConverter, type Payload } from "@temporalio/common";
import { AesGcmCodec, ENCRYPTED_ENCODING, KEY_ID_METADATA } from "../../../security/aes-gcm-codec.js";
import { PayloadDecryptionError } from "../../../security/errors.js";
import { encodeBatch } from "../../../connectors/kafka/batch-codec.js";
import { newKey, ringOf } from "./keys.js";

const SECRET = "Summarize the patient's chart for Mrs. Example";
const text = (b: Uint8Array | null | undefined) => Buffer.from(b ?? new Uint8Array()).toString("utf8");
const plain = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);

async function one(codec: AesGcmCodec, p: Payload, how: "encode" | "decode"): Promise<Payload> {
  const [out] = await codec[how]([p]);
  return out!;
}

function rejectsDecryption(keyId: string | null, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof PayloadDecryptionError, String(err));
    assert.equal(err.keyId, keyId);
    assert.equal(err.code, "PAYLOAD_DECRYPTION");
    assert.match(err.message, message);
    return true;
  };
}

test("round trip: the encrypted payload names its key, holds no clear text, and decodes to the original", async () => {
  const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
  const original = plain({ prompt: SECRET, n: 1 });
  const sealed = await one(codec, original, "encode");
  assert.equal(text(sealed.metadata?.encoding), ENCRYPTED_ENCODING);
  assert.equal(text(sealed.metadata?.[KEY_ID_METADATA]), "k1");
  assert.ok(!text(sealed.data).includes("Summarize") && !Buffer.from(sealed.data!).includes(Buffer.from("json/plain")), "no clear text or inner metadata");
  const opened = await one(codec, sealed, "decode");
  assert.deepEqual(defaultPayloadConverter.fromPayload(opened), { prompt: SECRET, n: 1 });
  assert.equal(text(opened.metadata?.encoding), "json/plain");
  // A fresh nonce each time: the same value never encrypts to the same bytes.
  const again = await one(codec, original, "encode");
  assert.notDeepEqual(Buffer.from(again.data!), Buffer.from(sealed.data!));
});

test("payloads that are not encrypted pass through decode unchanged (history from before encryption)", async () => {
  const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
  const clear = plain("written before encryption was on");
  assert.equal(await one(codec, clear, "decode"), clear);
  const binary = defaultPayloadConverter.toPayload(new Uint8Array([1, 2, 3]));
  assert.equal(await one(codec, binary, "decode"), binary);
});

test("rotation: the active key encrypts, every listed key decrypts; a retired key's payloads need it listed", async () => {
  const k1 = newKey();
  const k2 = newKey();
  const before = new AesGcmCodec(ringOf({ k1 }));
  const during = new AesGcmCodec(ringOf({ k2, k1 })); // the new key first: it is the active one
  const explicit = new AesGcmCodec(ringOf({ k1, k2 }, "test", "k2"));
  assert.equal(during.activeKeyId, "k2");
  assert.equal(explicit.activeKeyId, "k2");
  const old = await one(before, plain("old"), "encode");
  const fresh = await one(during, plain("new"), "encode");
  assert.equal(text(fresh.metadata?.[KEY_ID_METADATA]), "k2");
  assert.equal(defaultPayloadConverter.fromPayload(await one(during, old, "decode")), "old");
  assert.equal(defaultPayloadConverter.fromPayload(await one(explicit, fresh, "decode")), "new");
  const after = new AesGcmCodec(ringOf({ k2 }, "rotated"));
  await assert.rejects(one(after, old, "decode"), rejectsDecryption("k1", /key "k1", which is not among the keys of file \/keys\/rotated \(k2\)/));
});

test("a wrong key under the right id: one error naming the key id and where that key came from", async () => {
  const writer = new AesGcmCodec(ringOf({ k1: newKey() }));
  const wrongKey = newKey();
  const reader = new AesGcmCodec(ringOf({ k1: wrongKey }, "wrong"));
  const sealed = await one(writer, plain(SECRET), "encode");
  await assert.rejects(one(reader, sealed, "decode"), (err: unknown) => {
    rejectsDecryption("k1", /cannot decrypt a payload with key "k1" \(file \/keys\/wrong, line 1\): that key is not the one/)(err);
    assert.ok(!(err as Error).message.includes(wrongKey), "the message never holds key bytes");
    assert.equal((err as PayloadDecryptionError).keySource, "file /keys/wrong");
    return true;
  });
});

test("a missing key id: one error saying the payload names no key", async () => {
  const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
  const sealed = await one(codec, plain(SECRET), "encode");
  const { [KEY_ID_METADATA]: _dropped, ...metadata } = sealed.metadata!;
  await assert.rejects(one(codec, { ...sealed, metadata }, "decode"), rejectsDecryption(null, /names no key: its metadata has no "encryption-key-id"/));
  const empty = { ...sealed, metadata: { ...metadata, [KEY_ID_METADATA]: new Uint8Array() } };
  await assert.rejects(one(codec, empty, "decode"), rejectsDecryption(null, /names no key/));
});

test("tampered ciphertext, tag or nonce, and truncated data, fail authentication", async () => {
  const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
  const sealed = await one(codec, plain({ prompt: SECRET }), "encode");
  const data = sealed.data!;
  for (const at of [0, 12, Math.floor(data.length / 2), data.length - 1]) {
    const bent = Uint8Array.from(data);
    bent[at]! ^= 0x01;
    await assert.rejects(one(codec, { ...sealed, data: bent }, "decode"), rejectsDecryption("k1", /or the payload was altered/), `byte ${at}`);
  }
  await assert.rejects(one(codec, { ...sealed, data: data.subarray(0, 20) }, "decode"), rejectsDecryption("k1", /altered/));
});

test("size: encryption adds a fixed few dozen bytes per payload, also to a gzip'd record batch", async () => {
  const codec = new AesGcmCodec(ringOf({ "key-2026": newKey() }));
  const messages = Array.from({ length: 500 }, (_, i) => ({
    offset: String(i),
    key: Buffer.from(`k${i % 97}`),
    value: Buffer.from(JSON.stringify({ id: i, text: `${SECRET} #${i}` })),
    headers: {},
    timestamp: String(1_700_000_000_000 + i),
  }));
  const batch = plain(encodeBatch(messages));
  const small = plain({ id: 1 });
  const size = (p: Payload) => Object.entries(p.metadata ?? {}).reduce((n, [k, v]) => n + k.length + v.length, p.data?.length ?? 0);
  const overheadBatch = size(await one(codec, batch, "encode")) - size(batch);
  const overheadSmall = size(await one(codec, small, "encode")) - size(small);
  // Nonce 12 + tag 16 + the inner metadata serialized + the key id: independent of the data's size.
  assert.ok(overheadBatch > 28 && overheadBatch < 120, `batch overhead ${overheadBatch} B on ${size(batch)} B`);
  assert.ok(Math.abs(overheadBatch - overheadSmall) <= 4, `batch ${overheadBatch} B vs small ${overheadSmall} B`);
});
