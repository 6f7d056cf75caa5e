/**
 * How our kafkajs producers cut and group what they send: chunks of one partition below the
 * broker's message size, and produce calls of one partition leader each. One leader per call because
 * kafkajs 2.2.4 retries a send that spans several leaders wrongly when one of them dies: its retry
 * goes out while the requests to the live leaders are still in flight, and resends their partitions
 * with new sequence numbers (the kafka-cluster test measured 250 records written twice inside one
 * committed transaction after a kill -9 of a leader). Each call is grouped by the leaders our
 * metadata names, and the partitioner checks them against kafkajs' own metadata at every attempt of
 * the call (a retry follows kafkajs' refreshed metadata): where they differ it stops the attempt
 * before any request goes out (`LeaderMovedError`), and the call is regrouped and sent again. So a
 * call is one request to one broker, and a transaction costs one AddPartitionsToTxn and one produce
 * per leader instead of one each per partition.
 */
import { Partitioners, type ICustomPartitioner, type Message, type PartitionMetadata, type ProducerBatch } from "kafkajs";
import { LeaderMovedError, type OutgoingMessage } from "./client.js";
import { keyPartition } from "./murmur2.js";

/** Bytes per partition chunk: well below the broker's 1 MiB default message size. */
const SEND_CHUNK_BYTES = 512 * 1024;
/**
 * Most messages per chunk. Published kafkajs groups a call's messages by partition copying the
 * partition's array once per message, quadratic in the messages of one partition in a call (7.4 s
 * of a 62 s profile with ~10k small changelog records per call). Our patch of kafkajs
 * (`patches/`) makes that linear; with it, 5,000 per chunk measured no faster than 1,000, and the
 * cap keeps a kafkajs installed without the patch from going quadratic. A call holds at most one
 * chunk per partition.
 */
const SEND_CHUNK_MESSAGES = 1_000;
/** Most bytes of one produce call (several partitions of one leader). */
const CALL_BYTES = 4 * 1024 * 1024;
/** Regroupings of one send after leaders moved before the send fails (its unit is then retried). */
const MAX_LEADER_MOVES = 5;

/** Messages for one partition of one topic, in their order. */
export interface SendChunk {
  topic: string;
  partition: number;
  /** The partition's leader (node id) the chunk was grouped by. */
  leader: number;
  messages: OutgoingMessage[];
  /** Estimated bytes of its messages (`sizeOf`). */
  bytes: number;
}

/** One produce call: chunks of one leader, at most one per partition. */
export type ProduceCall = SendChunk[];

function sizeOf(m: OutgoingMessage): number {
  let n = 64 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += k.length + v.length + 8;
  return n;
}

/**
 * The partition a keyed message goes to by the default partitioner (murmur2 of the key, as the Java
 * client does), among `partitions`: where a producer that kept the defaults put a key's records.
 */
export function defaultPartitionOf(key: string | Buffer, partitions: number): number {
  return keyPartition(key, partitions);
}

/** The leader each chunk's first message was grouped by, for the partitioner to check. */
const groupedBy = new WeakMap<Message, number>();

/** A chunk's messages as kafkajs takes them; the first carries the leader the chunk was grouped by. */
export function kafkajsMessagesOf(chunk: SendChunk): Message[] {
  const partition = chunk.partition;
  const out = chunk.messages.map((m) => {
    const message: Message = { key: m.key, value: m.value, partition };
    if (m.headers) message.headers = m.headers;
    if (m.timestamp !== undefined) message.timestamp = m.timestamp;
    return message;
  });
  if (out[0]) groupedBy.set(out[0], chunk.leader);
  return out;
}

/** One produce call as kafkajs' `sendBatch` takes it (kafkajs merges a topic's chunks itself). */
export function topicMessagesOf(call: ProduceCall): ProducerBatch {
  return { topicMessages: call.map((chunk) => ({ topic: chunk.topic, messages: kafkajsMessagesOf(chunk) })) };
}

/**
 * The partitioner of our kafkajs producers, whose messages all name their partition (`chunks`
 * picked it): that partition, without the default partitioner's copy of the partition list per
 * message; a message without one is left to the default partitioner. It runs at every attempt of a
 * call, on kafkajs' metadata of that attempt: a chunk whose partition has another leader there than
 * the one it was grouped by stops the attempt (`LeaderMovedError`), before any request is sent.
 */
export const namedPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata, topic } = args;
    if (message.partition === undefined) return fallback(args);
    const expected = groupedBy.get(message);
    if (expected !== undefined) {
      const leader = partitionMetadata.find((p) => p.partitionId === message.partition)?.leader;
      if (leader !== expected) throw new LeaderMovedError(topic, message.partition, expected, leadersOf(partitionMetadata));
    }
    return message.partition;
  };
};

/** Leader per partition id (-1 where none is known), from a topic's partition metadata. */
export function leadersOf(partitions: ReadonlyArray<Pick<PartitionMetadata, "partitionId" | "leader">>): number[] {
  const leaders = Array.from({ length: partitions.length }, () => -1);
  for (const p of partitions) leaders[p.partitionId] = p.leader;
  return leaders;
}

/** The `LeaderMovedError` behind what a kafkajs call threw (kafkajs wraps what it does not retry), if any. */
export function leaderMovedIn(err: unknown): LeaderMovedError | null {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof LeaderMovedError) return e;
  return null;
}

/**
 * Groups chunks into produce calls of one leader each, at most one chunk per partition and
 * `CALL_BYTES` per call. A partition's chunks stay in order: each goes to a call after the call of
 * the one before it (calls are sent one after another).
 */
export function produceCalls(chunks: readonly SendChunk[]): ProduceCall[] {
  const calls: Array<{ leader: number; bytes: number; partitions: Set<string>; chunks: SendChunk[] }> = [];
  /** Index of the call that holds a partition's latest chunk. */
  const lastCall = new Map<string, number>();
  for (const chunk of chunks) {
    const id = `${chunk.partition}:${chunk.topic}`;
    const { bytes } = chunk;
    let i = (lastCall.get(id) ?? -1) + 1;
    for (; i < calls.length; i++) {
      const c = calls[i]!;
      if (c.leader === chunk.leader && !c.partitions.has(id) && c.bytes + bytes <= CALL_BYTES) break;
    }
    if (i === calls.length) calls.push({ leader: chunk.leader, bytes: 0, partitions: new Set(), chunks: [] });
    const call = calls[i]!;
    call.chunks.push(chunk);
    call.partitions.add(id);
    call.bytes += bytes;
    lastCall.set(id, i);
  }
  return calls.map((c) => c.chunks);
}

/**
 * The partition of each message as kafkajs' default partitioner picks it (murmur2 of the key, as
 * the Java client; round robin without a key), and each partition's leader, from each topic's
 * metadata, looked up once and corrected by what kafkajs saw (`LeaderMovedError`).
 */
export class Partitioning {
  private readonly leaders = new Map<string, Promise<number[]>>();
  private readonly partitioner = Partitioners.DefaultPartitioner();

  /** `partitionLeaders`: each partition's leader (node id, by partition id) of a topic, from its metadata. */
  constructor(private readonly partitionLeaders: (topic: string) => Promise<number[]>) {}

  private leadersOf(topic: string): Promise<number[]> {
    let n = this.leaders.get(topic);
    if (!n) {
      n = this.partitionLeaders(topic);
      // A failed lookup is asked again next time (the topic may have been created meanwhile).
      n.catch(() => this.leaders.delete(topic));
      this.leaders.set(topic, n);
    }
    return n;
  }

  /** Groups `messages` by topic and partition in chunks of at most `SEND_CHUNK_BYTES` and `SEND_CHUNK_MESSAGES`, keeping their order. */
  async chunks(messages: ReadonlyArray<{ topic: string; message: OutgoingMessage }>): Promise<SendChunk[]> {
    const leaders = new Map<string, number[]>();
    const metadata = new Map<string, PartitionMetadata[]>();
    for (const { topic } of messages) {
      if (leaders.has(topic)) continue;
      const l = await this.leadersOf(topic);
      leaders.set(topic, l);
      metadata.set(
        topic,
        l.map((leader, partitionId) => ({ partitionId, leader, partitionErrorCode: 0, replicas: [], isr: [] })),
      );
    }
    // By partition first: a unit that alternates topics (a keyBy into several repartition topics) must
    // not become one request per message. Order within each partition is kept.
    const byPartition = new Map<string, Pick<SendChunk, "topic" | "partition" | "messages">>();
    for (const { topic, message } of messages) {
      const partitions = metadata.get(topic)!;
      const partition =
        message.partition ??
        (message.key !== null && message.key !== undefined
          ? keyPartition(message.key, partitions.length)
          : this.partitioner({ topic, partitionMetadata: partitions, message: { key: null, value: message.value } }));
      const id = `${partition}:${topic}`;
      const list = byPartition.get(id);
      if (list) list.messages.push(message);
      else byPartition.set(id, { topic, partition, messages: [message] });
    }
    const out: SendChunk[] = [];
    for (const { topic, partition, messages: list } of byPartition.values()) {
      const leader = leaders.get(topic)![partition] ?? -1;
      let last: SendChunk | undefined;
      for (const message of list) {
        const size = sizeOf(message);
        if (!last || last.bytes + size > SEND_CHUNK_BYTES || last.messages.length >= SEND_CHUNK_MESSAGES) {
          last = { topic, partition, leader, messages: [], bytes: 0 };
          out.push(last);
        }
        last.messages.push(message);
        last.bytes += size;
      }
    }
    return out;
  }

  /**
   * Sends `messages` in produce calls of one leader each (`send` makes one kafkajs call of a
   * `ProduceCall`), one call after another. When kafkajs' metadata names other leaders, the calls
   * not yet sent are regrouped by them and sent (nothing of the stopped call went out).
   */
  async send(messages: ReadonlyArray<{ topic: string; message: OutgoingMessage }>, send: (call: ProduceCall) => Promise<unknown>): Promise<void> {
    let calls = produceCalls(await this.chunks(messages));
    for (let moves = 0, i = 0; i < calls.length;) {
      try {
        await send(calls[i]!);
        i++;
      } catch (err) {
        const moved = leaderMovedIn(err);
        if (!moved || ++moves > MAX_LEADER_MOVES) throw err;
        this.leaders.set(moved.topic, Promise.resolve([...moved.leaders]));
        calls = produceCalls(
          calls
            .slice(i)
            .flat()
            .map((c) => ({ ...c, leader: moved.topic === c.topic ? (moved.leaders[c.partition] ?? -1) : c.leader })),
        );
        i = 0;
      }
    }
  }
}
