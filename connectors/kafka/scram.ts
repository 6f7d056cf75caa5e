/**
 * The client side of SASL/SCRAM (RFC 5802, RFC 7677) for our own Kafka wire connection: the
 * messages a client sends and the proof of the server it checks. kafkajs has its own, inside its
 * connections; ours speaks to brokers for the two requests kafkajs lacks (`stable-offsets.ts`).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/** The SCRAM hash of a mechanism, and its digest size in bytes. */
const HASHES = { "scram-sha-256": { hash: "sha256", bytes: 32 }, "scram-sha-512": { hash: "sha512", bytes: 64 } } as const;

/** A SCRAM mechanism as named in the config. */
export type ScramMechanism = keyof typeof HASHES;

/** A username as RFC 5802 writes it: `=` and `,` escaped. */
function saslName(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

/** The attributes of a SCRAM message (`r=...,s=...,i=...`). */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(",")) {
    const i = part.indexOf("=");
    if (i > 0) out.set(part.slice(0, i), part.slice(i + 1));
  }
  return out;
}

/** One SCRAM exchange: `first()`, then `final(serverFirst)`, then `verify(serverFinal)`. */
export class ScramExchange {
  private readonly firstBare: string;
  private serverSignature: Buffer | null = null;

  constructor(
    private readonly mechanism: ScramMechanism,
    username: string,
    private readonly password: string,
    /** The client nonce (random unless given, as the RFC's test vectors do). */
    private readonly nonce = randomBytes(24).toString("base64"),
  ) {
    this.firstBare = `n=${saslName(username)},r=${this.nonce}`;
  }

  /** The client-first message (no channel binding). */
  first(): Buffer {
    return Buffer.from(`n,,${this.firstBare}`, "utf8");
  }

  /** The client-final message answering the server-first one. */
  final(serverFirst: Buffer): Buffer {
    const text = serverFirst.toString("utf8");
    const a = attributes(text);
    const nonce = a.get("r");
    const salt = a.get("s");
    const iterations = Number(a.get("i"));
    if (a.has("e")) throw new Error(`the server refused the SCRAM exchange: ${a.get("e")}`);
    if (!nonce?.startsWith(this.nonce) || !salt || !Number.isInteger(iterations) || iterations < 1) throw new Error(`malformed SCRAM server-first message`);
    const { hash, bytes } = HASHES[this.mechanism];
    const hmac = (key: Buffer, data: string): Buffer => createHmac(hash, key).update(data, "utf8").digest();
    const salted = pbkdf2Sync(this.password, Buffer.from(salt, "base64"), iterations, bytes, hash);
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash(hash).update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.firstBare},${text},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString("base64")}`, "utf8");
  }

  /** Throws unless the server-final message proves the server knows the password too. */
  verify(serverFinal: Buffer): void {
    const a = attributes(serverFinal.toString("utf8"));
    if (a.has("e")) throw new Error(`the server refused the SCRAM exchange: ${a.get("e")}`);
    const v = Buffer.from(a.get("v") ?? "", "base64");
    if (!this.serverSignature || v.length !== this.serverSignature.length || !timingSafeEqual(v, this.serverSignature)) {
      throw new Error("the server's SCRAM signature does not match: it does not hold this user's credentials");
    }
  }
}
