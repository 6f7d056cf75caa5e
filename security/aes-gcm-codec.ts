/**
 * The encryption payload codec: each payload (its metadata and data, serialized) is sealed with
 * AES-256-GCM under the active key into a new payload whose metadata says `binary/encrypted` and
 * names the key id. Data is a 12-byte random nonce, the ciphertext and the 16-byte tag, the layout of
 * Temporal's encryption samples. Payloads that are not encrypted pass through decode unchanged
 * (history written before encryption was turned on stays readable).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Payload, PayloadCodec } from "@temporalio/common";
import proto from "@temporalio/proto";
import type { EncryptionKey, KeyRing } from "./key-ring.js";
import { PayloadDecryptionError } from "./errors.js";

/** The `encoding` metadata of an encrypted payload. */
export const ENCRYPTED_ENCODING = "binary/encrypted";
/** The metadata key naming the key a payload was encrypted with. */
export const KEY_ID_METADATA = "encryption-key-id";

const PayloadMessage = proto.temporal.api.common.v1.Payload;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** AES-256-GCM `PayloadCodec` over a key ring. */
export class AesGcmCodec implements PayloadCodec {
  constructor(private readonly ring: KeyRing) {}

  /** Id of the key new payloads are encrypted with. */
  get activeKeyId(): string {
    return this.ring.active.id;
  }

  /** Encrypts every payload with the active key. */
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.seal(p, this.ring.active));
  }

  /** Decrypts encrypted payloads with the key each names; others pass through. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => (encodingOf(p) === ENCRYPTED_ENCODING ? this.open(p) : p));
  }

  private seal(payload: Payload, key: EncryptionKey): Payload {
    const plain = PayloadMessage.encode(payload).finish();
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key.key, nonce);
    const data = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return { metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(key.id) }, data };
  }

  private open(payload: Payload): Payload {
    const keyId = payload.metadata?.[KEY_ID_METADATA];
    const loaded = `the keys of ${this.ring.source} (${[...this.ring.keys.keys()].join(", ")})`;
    if (!keyId || keyId.length === 0) {
      throw new PayloadDecryptionError(
        null,
        this.ring.source,
        `an encrypted payload (encoding ${ENCRYPTED_ENCODING}) names no key: its metadata has no "${KEY_ID_METADATA}", so none of ${loaded} can be chosen; it was not written by this codec, or its metadata was altered`,
      );
    }
    const id = text.decode(keyId);
    const key = this.ring.keys.get(id);
    if (!key) {
      throw new PayloadDecryptionError(
        id,
        this.ring.source,
        `a payload was encrypted with key "${id}", which is not among ${loaded}; list that key there (after a rotation, keep old keys listed while history encrypted with them is read)`,
      );
    }
    try {
      const data = payload.data ?? new Uint8Array();
      if (data.length < NONCE_BYTES + TAG_BYTES) throw new Error(`${data.length} bytes is shorter than a nonce and a tag`);
      const decipher = createDecipheriv("aes-256-gcm", key.key, data.subarray(0, NONCE_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return PayloadMessage.decode(plain);
    } catch (err) {
      throw new PayloadDecryptionError(
        id,
        this.ring.source,
        `cannot decrypt a payload with key "${id}" (${key.origin}): that key is not the one it was encrypted with, or the payload was altered`,
        { cause: err },
      );
    }
  }
}

function encodingOf(payload: Payload): string | undefined {
  const e = payload.metadata?.encoding;
  return e ? text.decode(e) : undefined;
}
