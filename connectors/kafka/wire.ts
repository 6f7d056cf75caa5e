/**
 * Our own connection to one Kafka broker, for the few requests kafkajs cannot make (see
 * `stable-offsets.ts`) and for checking a secured cluster's settings before kafkajs starts: size-
 * prefixed requests answered in order, over TCP or TLS, authenticated with SASL PLAIN or SCRAM
 * first when the config asks for it. Certificate and password failures come back as one clear
 * error each (kafkajs would retry a refused certificate for half a minute as a network error).
 */
import { connect as connectTcp, isIP, type Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { BrokerUnavailableError } from "../../core/errors.js";
import { KafkaAuthenticationError, KafkaTlsError } from "./client.js";
import { ScramExchange } from "./scram.js";
import { isPlaintext, mechanismName, type KafkaSecurity, type SaslCredentials } from "./security.js";

const SASL_HANDSHAKE = 17;
const SASL_AUTHENTICATE = 36;
const API_VERSIONS = 18;
const UNSUPPORTED_SASL_MECHANISM = 33;

/** Bytes of a request body, written field by field. */
export class Writer {
  private readonly parts: Buffer[] = [];
  private fixed(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    return this.raw(b);
  }
  int8(v: number): this {
    return this.fixed(1, (b) => b.writeInt8(v));
  }
  int16(v: number): this {
    return this.fixed(2, (b) => b.writeInt16BE(v));
  }
  int32(v: number): this {
    return this.fixed(4, (b) => b.writeInt32BE(v));
  }
  uvarint(v: number): this {
    const bytes: number[] = [];
    while (v > 0x7f) {
      bytes.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  string(s: string): this {
    const b = Buffer.from(s, "utf8");
    return this.int16(b.length).raw(b);
  }
  compactString(s: string): this {
    const b = Buffer.from(s, "utf8");
    return this.uvarint(b.length + 1).raw(b);
  }
  /** A `BYTES` field: int32 length, then the bytes. */
  blob(b: Buffer): this {
    return this.int32(b.length).raw(b);
  }
  /** An empty tagged-fields section. */
  noTags(): this {
    return this.uvarint(0);
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Reads a response body field by field. */
export class Reader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  int16(): number {
    return this.b.readInt16BE((this.at += 2) - 2);
  }
  int32(): number {
    return this.b.readInt32BE((this.at += 4) - 4);
  }
  int64(): bigint {
    return this.b.readBigInt64BE((this.at += 8) - 8);
  }
  uvarint(): number {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = this.b.readUInt8(this.at++);
      v += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return v;
    }
  }
  nullableString(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    return this.b.toString("utf8", (this.at += n) - n, this.at);
  }
  compactNullableString(): string | null {
    const n = this.uvarint() - 1;
    if (n < 0) return null;
    return this.b.toString("utf8", (this.at += n) - n, this.at);
  }
  /** A `BYTES` field (empty when null). */
  blob(): Buffer {
    const n = this.int32();
    if (n < 0) return Buffer.alloc(0);
    return this.b.subarray((this.at += n) - n, this.at);
  }
  /** Skips a tagged-fields section. */
  tags(): void {
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint();
      this.at += this.uvarint();
    }
  }
}

/** The TLS error codes that name a certificate the client refused (the broker's). */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME/;

/** Our error for a TLS failure, naming the config key and file that decide it. */
function tlsError(address: string, security: KafkaSecurity, err: NodeJS.ErrnoException): KafkaTlsError {
  const code = err.code ?? "";
  const files = security.files ?? {};
  const detail = `${err.message.split("\n")[0]}${code ? ` (${code})` : ""}`;
  if (/ALERT/.test(code)) {
    const cert = files.cert ? `kafka.ssl.cert = "${files.cert}"` : "no client certificate (kafka.ssl.cert and kafka.ssl.key not set)";
    return new KafkaTlsError(`Kafka broker ${address} refused the TLS client certificate, ${cert}: ${detail}`, { cause: err });
  }
  if (UNTRUSTED.test(code)) {
    const ca = files.ca ? `kafka.ssl.ca = "${files.ca}"` : "kafka.ssl.ca not set, so only the system's CAs are trusted";
    return new KafkaTlsError(`the TLS certificate of Kafka broker ${address} is not trusted, ${ca}: ${detail}`, { cause: err });
  }
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_TOO_LONG/.test(code)) {
    return new KafkaTlsError(`Kafka broker ${address} does not speak TLS on this port (kafka.ssl is on): ${detail}`, { cause: err });
  }
  return new KafkaTlsError(`TLS connection to Kafka broker ${address} failed: ${detail}`, { cause: err });
}

/** True for a socket error raised by TLS itself rather than by the network. */
function isTlsFailure(err: NodeJS.ErrnoException): boolean {
  return /^ERR_SSL|^ERR_TLS|CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|HOSTNAME/.test(err.code ?? "");
}

/** One connection to one broker: size-prefixed requests, answered in order. */
export class Connection {
  private buffered = Buffer.alloc(0);
  private waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private failed: Error | null = null;
  private correlation = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly clientId: string,
    private readonly address: string,
    private readonly security: KafkaSecurity,
  ) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 4 && this.buffered.length >= 4 + this.buffered.readInt32BE(0)) {
        const size = this.buffered.readInt32BE(0);
        const frame = this.buffered.subarray(4, 4 + size);
        this.buffered = this.buffered.subarray(4 + size);
        this.waiting.shift()?.resolve(frame);
      }
    });
    const fail = (err: Error): void => {
      this.failed ??= isTlsFailure(err) ? tlsError(address, security, err) : err;
      for (const w of this.waiting.splice(0)) w.reject(this.failed);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new BrokerUnavailableError(`connection to Kafka broker ${address} closed`)));
  }

  /** Connects (TLS when `security.ssl`) and authenticates (when `security.sasl`). */
  static async open(address: string, clientId: string, timeoutMs: number, security: KafkaSecurity = {}): Promise<Connection> {
    const i = address.lastIndexOf(":");
    const host = address.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(address.slice(i + 1));
    const socket = await new Promise<Socket>((resolve, reject) => {
      const ssl = security.ssl;
      // Node sends no SNI for an IP address; a host name is both the SNI and the name checked.
      const s = ssl ? connectTls({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl }) : connectTcp({ host, port });
      const timer = setTimeout(() => s.destroy(new BrokerUnavailableError(`connect to Kafka broker ${address} timed out after ${timeoutMs} ms`)), timeoutMs);
      s.once(ssl ? "secureConnect" : "connect", () => {
        clearTimeout(timer);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(isTlsFailure(err) ? tlsError(address, security, err) : err);
      });
    });
    const conn = new Connection(socket, clientId, address, security);
    try {
      if (security.sasl) await conn.authenticate(security.sasl, timeoutMs);
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  /** SaslHandshake, then one (PLAIN) or two (SCRAM) SaslAuthenticate rounds. */
  private async authenticate(sasl: SaslCredentials, timeoutMs: number): Promise<void> {
    const mechanism = mechanismName(sasl.mechanism);
    const refused = (detail: string, cause?: unknown) =>
      new KafkaAuthenticationError(mechanism, sasl.username, this.address, detail, cause === undefined ? {} : { cause });
    const handshake = await this.request(SASL_HANDSHAKE, 1, false, new Writer().string(mechanism).bytes(), timeoutMs).catch((err: unknown) => {
      throw this.unanswered("SaslHandshake", err);
    });
    const error = handshake.int16();
    if (error === UNSUPPORTED_SASL_MECHANISM) {
      const offered: string[] = [];
      for (let n = handshake.int32(); n > 0; n--) offered.push(handshake.nullableString() ?? "");
      throw refused(`the broker does not offer ${mechanism} on this listener (it offers ${offered.join(", ") || "none"})`);
    }
    if (error !== 0) throw refused(`SaslHandshake answered Kafka error ${error}`);
    const round = async (payload: Buffer): Promise<Buffer> => {
      const r = await this.request(SASL_AUTHENTICATE, 1, false, new Writer().blob(payload).bytes(), timeoutMs);
      const code = r.int16();
      const message = r.nullableString();
      const answer = r.blob();
      if (code !== 0) throw refused(message ?? `SaslAuthenticate answered Kafka error ${code}`);
      return answer;
    };
    if (sasl.mechanism === "plain") {
      await round(Buffer.from(`\0${sasl.username}\0${sasl.password}`, "utf8"));
      return;
    }
    const scram = new ScramExchange(sasl.mechanism, sasl.username, sasl.password);
    const serverFirst = await round(scram.first());
    let final: Buffer;
    try {
      final = scram.final(serverFirst);
    } catch (err) {
      throw refused((err as Error).message, err);
    }
    const serverFinal = await round(final);
    try {
      scram.verify(serverFinal);
    } catch (err) {
      throw refused((err as Error).message, err);
    }
  }

  /** A request that got no answer: on a plain connection to a TLS listener the broker just closes it. */
  private unanswered(what: string, err: unknown): Error {
    if (err instanceof KafkaTlsError || this.security.ssl) return err as Error;
    return new BrokerUnavailableError(`Kafka broker ${this.address} closed the connection at ${what}: is the listener TLS (then set kafka.ssl)?`, {
      cause: err,
    });
  }

  /** Sends one request; `flexible` selects request header v2 and response header v1. */
  async request(apiKey: number, version: number, flexible: boolean, body: Buffer, timeoutMs: number): Promise<Reader> {
    if (this.failed) throw this.failed;
    const header = new Writer().int16(apiKey).int16(version).int32(++this.correlation).string(this.clientId);
    if (flexible) header.noTags();
    const payload = Buffer.concat([header.bytes(), body]);
    const frame = new Promise<Buffer>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.socket.write(Buffer.concat([new Writer().int32(payload.length).bytes(), payload]));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new BrokerUnavailableError(`Kafka request ${apiKey} v${version} to ${this.address} got no answer in ${timeoutMs} ms`);
        this.socket.destroy(err);
        reject(err);
      }, timeoutMs);
    });
    try {
      const reader = new Reader(await Promise.race([frame, timeout]));
      reader.int32(); // correlation id: one request at a time, so it is ours
      if (flexible) reader.tags();
      return reader;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Connects to one of `brokers` with `security` and has one request answered: a refused password or
 * certificate throws its clear error at once. A broker that cannot be reached is not this check's
 * business (kafkajs retries those): it returns quietly when none answers.
 */
export async function checkSecurity(brokers: readonly string[], clientId: string, security: KafkaSecurity, timeoutMs = 5_000): Promise<void> {
  for (const address of brokers) {
    let conn: Connection | null = null;
    try {
      conn = await Connection.open(address, clientId, timeoutMs, security);
      // With TLS 1.3 a refused client certificate shows only on the first read: ask for the API versions.
      await conn.request(API_VERSIONS, 0, false, Buffer.alloc(0), timeoutMs);
      return;
    } catch (err) {
      if (err instanceof KafkaTlsError || err instanceof KafkaAuthenticationError) throw err;
    } finally {
      conn?.close();
    }
  }
}

/**
 * `checkSecurity` once per client, for a secured cluster (nothing for plaintext); a failed check is
 * tried again on the next call. Each client awaits it before it connects.
 */
export function securityCheckOnce(brokers: readonly string[], clientId: string, security: KafkaSecurity): () => Promise<void> {
  let checked: Promise<void> | null = null;
  return async () => {
    if (isPlaintext(security)) return;
    checked ??= checkSecurity(brokers, clientId, security).catch((err: unknown) => {
      checked = null;
      throw err;
    });
    await checked;
  };
}
