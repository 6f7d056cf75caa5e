/**
 * Committed offsets of a consumer group read with `require_stable` (OffsetFetch v7, KIP-447): the
 * group coordinator answers UNSTABLE_OFFSET_COMMIT while a transaction that commits offsets for the
 * partition is not finished, instead of the older committed offset. The sink's progress marker needs
 * this. After a broker crash, a transaction whose commit was in doubt can still be completing when a
 * new producer with the same transactional id has been fenced in, and a plain OffsetFetch then
 * returns the marker from before it: the batch would be written twice (measured with
 * test/integration/sink-broker-kills.test.ts). kafkajs speaks OffsetFetch only up to v4, which has
 * no such flag, so this file speaks the two requests it needs (FindCoordinator v1, OffsetFetch v7)
 * over our own connection (`wire.ts`, with the cluster's TLS and SASL), one request at a time.
 */
import { SageError } from "../../core/errors.js";
import { UnstableOffsetsError, type CommittedMarker } from "./client.js";
import type { KafkaSecurity } from "./security.js";
import { Connection, Writer } from "./wire.js";

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

/** Options of `fetchStableOffsets`. */
export interface StableOffsetsOptions {
  brokers: string[];
  clientId: string;
  /** TLS and SASL of the cluster (none: plaintext). */
  security?: KafkaSecurity;
  /** How long to keep asking while the answer is retriable (unstable, loading, moving). */
  deadlineMs?: number;
  requestTimeoutMs?: number;
}

/**
 * The committed offsets of `groupId` on `topic`'s `partitions`, once no transaction is still
 * committing offsets for them (absent from the map: none committed). Retriable answers are asked
 * again until `deadlineMs`; then, or on any other error, it throws.
 */
export async function fetchStableOffsets(o: StableOffsetsOptions, groupId: string, topic: string, partitions: number[]): Promise<Map<number, StableOffset>> {
  const deadline = Date.now() + (o.deadlineMs ?? 30_000);
  const timeoutMs = o.requestTimeoutMs ?? 10_000;
  let pause = 20;
  for (let attempt = 0; ; attempt++) {
    let conn: Connection | null = null;
    try {
      conn = await Connection.open(o.brokers[attempt % o.brokers.length]!, o.clientId, timeoutMs, o.security);
      const coordinator = await findCoordinator(conn, groupId, timeoutMs);
      conn.close();
      conn = await Connection.open(coordinator, o.clientId, timeoutMs, o.security);
      return await offsetFetch(conn, groupId, topic, partitions, timeoutMs);
    } catch (err) {
      // A refused password or certificate is as final as a protocol error that is not retriable.
      const retriable = err instanceof KafkaProtocolError ? err.retriable : !(err instanceof SageError) || err.retriable;
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

/** A committed offset and the metadata committed with it. */
export interface StableOffset {
  offset: bigint;
  metadata: string | null;
}

/**
 * `KafkaAdmin.committedMarkers` of both clients: the stable committed offsets and their metadata,
 * as strings; still unstable after `waitMs`, an `UnstableOffsetsError`.
 */
export async function committedMarkers(o: StableOffsetsOptions, groupId: string, topic: string, partitions: number[]): Promise<Map<number, CommittedMarker>> {
  try {
    const stable = await fetchStableOffsets(o, groupId, topic, partitions);
    return new Map([...stable].map(([p, { offset, metadata }]) => [p, { offset: String(offset), metadata }]));
  } catch (err) {
    if (err instanceof KafkaProtocolError && err.code === UNSTABLE_OFFSET_COMMIT) throw new UnstableOffsetsError(groupId, topic, err);
    throw err;
  }
}

async function offsetFetch(conn: Connection, groupId: string, topic: string, partitions: number[], timeoutMs: number): Promise<Map<number, StableOffset>> {
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
  const out = new Map<number, StableOffset>();
  let partitionError: KafkaProtocolError | null = null;
  for (let t = r.uvarint() - 1; t > 0; t--) {
    const name = r.compactNullableString();
    for (let p = r.uvarint() - 1; p > 0; p--) {
      const partition = r.int32();
      const offset = r.int64();
      r.int32(); // committed leader epoch
      // @confluentinc/kafka-javascript 1.10.1's binding commits a string's terminating NUL with it: dropped here.
      const metadata = r.compactNullableString()?.replace(/\0$/, "") ?? null;
      const error = r.int16();
      r.tags();
      if (error !== 0) partitionError ??= new KafkaProtocolError(error, `OffsetFetch of group ${groupId} on ${name}:${partition}`);
      else if (name === topic && offset >= 0n) out.set(partition, { offset, metadata: metadata || null });
    }
    r.tags();
  }
  const error = r.int16();
  if (error !== 0) throw new KafkaProtocolError(error, `OffsetFetch of group ${groupId}`);
  if (partitionError) throw partitionError;
  return out;
}
