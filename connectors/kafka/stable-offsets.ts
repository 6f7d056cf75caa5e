/**
 * Committed offsets of a consumer group read with `require_stable` (OffsetFetch v7, KIP-447): the
 * group coordinator answers UNSTABLE_OFFSET_COMMIT while a transaction that commits offsets for the
 * partition is not finished, instead of the older committed offset. The sink's progress marker needs
 * this. After a broker crash, a transaction whose commit was in doubt can still be completing when a
 * new producer with the same transactional id has been fenced in, and a plain OffsetFetch then
 * returns the marker from before it: the batch would be written twice (measured with
 * test/integration/sink-broker-kills.test.ts). kafkajs speaks OffsetFetch only up to v4, which has
 * no such flag, so this file speaks the two requests it needs (FindCoordinator v1, OffsetFetch v7)
 * over a plain socket, one request at a time.
 */
import { connect, type Socket } from "node:net";
import { BrokerUnavailableError } from "../../core/errors.js";

/** The answer while a transaction that commits the offsets is open. */
export const UNSTABLE_OFFSET_COMMIT = 88;
const FIND_COORDINATOR = 10;
const OFFSET_FETCH = 9;
/** Errors that clear up by themselves: ask again after a pause. */
const RETRIABLE = new Map<number, string>([
  [7, "REQUEST_TIMED_OUT"],
  [14, "COORDINATOR_LOAD_IN_PROGRESS"],
  [15, "COORDINATOR_NOT_AVAILABLE"],
  [16, "NOT_COORDINATOR"],
  [88, "UNSTABLE_OFFSET_COMMIT"],
]);

/** A Kafka protocol error code from a response, named. */
export class KafkaProtocolError extends Error {
  constructor(
    readonly code: number,
    what: string,
  ) {
    super(`${what}: Kafka error ${code}${RETRIABLE.has(code) ? ` (${RETRIABLE.get(code)})` : ""}`);
  }
  get retriable(): boolean {
    return RETRIABLE.has(this.code);
  }
}

/** Bytes of a request body, written field by field. */
class Writer {
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
class Reader {
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
  /** Skips a tagged-fields section. */
  tags(): void {
    for (let n = this.uvarint(); n > 0; n--) {
      this.uvarint();
      this.at += this.uvarint();
    }
  }
}

/** One connection to one broker: size-prefixed requests, answered in order. */
class Connection {
  private buffered = Buffer.alloc(0);
  private waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private failed: Error | null = null;
  private correlation = 0;

  private constructor(
    private readonly socket: Socket,
    private readonly clientId: string,
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
      this.failed ??= err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new BrokerUnavailableError(`connection to a Kafka broker closed`)));
  }

  static open(address: string, clientId: string, timeoutMs: number): Promise<Connection> {
    const i = address.lastIndexOf(":");
    const host = address.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(address.slice(i + 1));
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => socket.destroy(new BrokerUnavailableError(`connect to ${address} timed out after ${timeoutMs} ms`)), timeoutMs);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.setNoDelay(true);
        resolve(new Connection(socket, clientId));
      });
      socket.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
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
        const err = new BrokerUnavailableError(`Kafka request ${apiKey} v${version} got no answer in ${timeoutMs} ms`);
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

/** Options of `fetchStableOffsets`. */
export interface StableOffsetsOptions {
  brokers: string[];
  clientId: string;
  /** How long to keep asking while the answer is retriable (unstable, loading, moving). */
  deadlineMs?: number;
  requestTimeoutMs?: number;
}

/**
 * The committed offsets of `groupId` on `topic`'s `partitions`, once no transaction is still
 * committing offsets for them (absent from the map: none committed). Retriable answers are asked
 * again until `deadlineMs`; then, or on any other error, it throws.
 */
export async function fetchStableOffsets(o: StableOffsetsOptions, groupId: string, topic: string, partitions: number[]): Promise<Map<number, bigint>> {
  const deadline = Date.now() + (o.deadlineMs ?? 30_000);
  const timeoutMs = o.requestTimeoutMs ?? 10_000;
  let pause = 20;
  for (let attempt = 0; ; attempt++) {
    let conn: Connection | null = null;
    try {
      conn = await Connection.open(o.brokers[attempt % o.brokers.length]!, o.clientId, timeoutMs);
      const coordinator = await findCoordinator(conn, groupId, timeoutMs);
      conn.close();
      conn = await Connection.open(coordinator, o.clientId, timeoutMs);
      return await offsetFetch(conn, groupId, topic, partitions, timeoutMs);
    } catch (err) {
      const retriable = !(err instanceof KafkaProtocolError) || err.retriable;
      if (!retriable || Date.now() + pause > deadline) throw err;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 1_000);
    } finally {
      conn?.close();
    }
  }
}

/** The address of the group's coordinator. */
async function findCoordinator(conn: Connection, groupId: string, timeoutMs: number): Promise<string> {
  const r = await conn.request(FIND_COORDINATOR, 1, false, new Writer().string(groupId).int8(0).bytes(), timeoutMs);
  r.int32(); // throttle
  const error = r.int16();
  r.nullableString(); // error message
  r.int32(); // node id
  const host = r.nullableString();
  const port = r.int32();
  if (error !== 0) throw new KafkaProtocolError(error, `FindCoordinator for group ${groupId}`);
  return `${host}:${port}`;
}

async function offsetFetch(conn: Connection, groupId: string, topic: string, partitions: number[], timeoutMs: number): Promise<Map<number, bigint>> {
  const body = new Writer()
    .compactString(groupId)
    .uvarint(2)
    .compactString(topic)
    .uvarint(partitions.length + 1);
  for (const p of partitions) body.int32(p);
  body.noTags(); // topic
  body.int8(1); // require_stable
  body.noTags();
  const r = await conn.request(OFFSET_FETCH, 7, true, body.bytes(), timeoutMs);
  r.int32(); // throttle
  const out = new Map<number, bigint>();
  let partitionError: KafkaProtocolError | null = null;
  for (let t = r.uvarint() - 1; t > 0; t--) {
    const name = r.compactNullableString();
    for (let p = r.uvarint() - 1; p > 0; p--) {
      const partition = r.int32();
      const offset = r.int64();
      r.int32(); // committed leader epoch
      r.compactNullableString(); // metadata
      const error = r.int16();
      r.tags();
      if (error !== 0) partitionError ??= new KafkaProtocolError(error, `OffsetFetch of group ${groupId} on ${name}:${partition}`);
      else if (name === topic && offset >= 0n) out.set(partition, offset);
    }
    r.tags();
  }
  const error = r.int16();
  if (error !== 0) throw new KafkaProtocolError(error, `OffsetFetch of group ${groupId}`);
  if (partitionError) throw partitionError;
  return out;
}
