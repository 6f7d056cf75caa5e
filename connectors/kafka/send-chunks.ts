/**
 * How our kafkajs producers cut what they send: one partition per produce call, in chunks below
 * the broker's message size. One partition per call because kafkajs 2.2.4 retries a send that spans
 * several partition leaders wrongly when one of them dies: its retry goes out while the requests
 * to the live leaders are still in flight, and resends their partitions with new sequence numbers
 * (the kafka-cluster test measured 250 records written twice inside one committed transaction
 * after a kill -9 of a leader). With one leader per call there is no sibling request to resend.
 */
import { Partitioners, type ICustomPartitioner, type PartitionMetadata } from "kafkajs";
import type { OutgoingMessage } from "./client.js";
import { keyPartition } from "./murmur2.js";

/** Bytes per produce call inside a transaction: well below the broker's 1 MiB default message size. */
const SEND_CHUNK_BYTES = 512 * 1024;
/**
 * Most messages per send: kafkajs groups a send's messages by partition copying the partition's
 * array once per message, quadratic in the messages of one call (7.4 s of a 62 s profile with ~10k
 * small changelog records per call).
 */
const SEND_CHUNK_MESSAGES = 1_000;

/** Messages for one partition of one topic, in their order. */
export interface SendChunk {
  topic: string;
  partition: number;
  messages: OutgoingMessage[];
}

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

/**
 * The partitioner of our kafkajs producers, whose messages all name their partition (`chunks`
 * picked it): that partition, without the default partitioner's copy of the partition list per
 * message; a message without one is left to the default partitioner.
 */
export const namedPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => args.message.partition ?? fallback(args);
};

/**
 * The partition of each message as kafkajs' default partitioner picks it (murmur2 of the key, as
 * the Java client; round robin without a key), from each topic's partition count, looked up once.
 */
export class Partitioning {
  private readonly counts = new Map<string, Promise<number>>();
  private readonly partitioner = Partitioners.DefaultPartitioner();

  constructor(private readonly partitionCount: (topic: string) => Promise<number>) {}

  private count(topic: string): Promise<number> {
    let n = this.counts.get(topic);
    if (!n) {
      n = this.partitionCount(topic);
      // A failed lookup is asked again next time (the topic may have been created meanwhile).
      n.catch(() => this.counts.delete(topic));
      this.counts.set(topic, n);
    }
    return n;
  }

  /** Groups `messages` by topic and partition in chunks of at most `SEND_CHUNK_BYTES` and `SEND_CHUNK_MESSAGES`, keeping their order. */
  async chunks(messages: ReadonlyArray<{ topic: string; message: OutgoingMessage }>): Promise<SendChunk[]> {
    const counts = new Map<string, PartitionMetadata[]>();
    for (const { topic } of messages) {
      if (counts.has(topic)) continue;
      const n = await this.count(topic);
      counts.set(
        topic,
        Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] })),
      );
    }
    // By partition first: a unit that alternates topics (a keyBy into several repartition topics) must
    // not become one request per message. Order within each partition is kept.
    const byPartition = new Map<string, SendChunk>();
    for (const { topic, message } of messages) {
      const partition =
        message.partition ??
        (message.key !== null && message.key !== undefined
          ? keyPartition(message.key, counts.get(topic)!.length)
          : this.partitioner({ topic, partitionMetadata: counts.get(topic)!, message: { key: null, value: message.value } }));
      const id = `${partition}:${topic}`;
      const list = byPartition.get(id);
      if (list) list.messages.push(message);
      else byPartition.set(id, { topic, partition, messages: [message] });
    }
    const out: Array<SendChunk & { bytes: number }> = [];
    for (const { topic, partition, messages: list } of byPartition.values()) {
      let last: (SendChunk & { bytes: number }) | undefined;
      for (const message of list) {
        const size = sizeOf(message);
        if (!last || last.bytes + size > SEND_CHUNK_BYTES || last.messages.length >= SEND_CHUNK_MESSAGES)
          out.push((last = { topic, partition, messages: [], bytes: 0 }));
        last.messages.push(message);
        last.bytes += size;
      }
    }
    return out.map(({ topic, partition, messages: m }) => ({ topic, partition, messages: m }));
  }
}
