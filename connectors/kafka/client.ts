/**
 * Our own small Kafka client interface. Everything else (shim, sink, tests, benches) talks to Kafka
 * through it; `kafkajs-client.ts` implements it with kafkajs, which is in maintenance mode, so a
 * second implementation can be dropped in and run through the same tests.
 */
import { SageError } from "../../core/errors.js";

/** A record as read from Kafka. */
export interface ConsumedMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
}

/** A record to write. */
export interface OutgoingMessage {
  key: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Record<string, string>;
  timestamp?: string;
  /** Explicit partition (default: by key, murmur2 as the Java client does). */
  partition?: number;
}

/** The messages of one partition from one fetch. */
export interface PartitionBatch {
  topic: string;
  partition: number;
  messages: ConsumedMessage[];
}

/** What a batch handler can do while it holds a batch. */
export interface BatchControl {
  /** False once the partition was revoked (rebalance) or the consumer is stopping: stop working on the batch. */
  active(): boolean;
  /** Marks records up to `offset` as handled (this member's fetch position; not a commit). Unresolved records are fetched again. */
  resolve(offset: string): void;
  /** Stops fetching this partition until the returned function is called; its unresolved records are fetched again then. */
  pause(): () => void;
}

/** Options of a group consumer. */
export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  fromBeginning: boolean;
  /** Longest time the broker holds a fetch to fill it (the micro-batch buffer timeout). */
  maxWaitMs: number;
  /** Bytes the broker waits for before it answers a fetch early. */
  minBytes: number;
  /** Most bytes fetched per partition per request. */
  maxBytesPerPartition: number;
  /** Partitions handled at the same time (one handler call per partition at a time). */
  concurrency: number;
  sessionTimeoutMs: number;
  /** Read only committed records of transactional producers (default true). */
  readCommitted?: boolean;
  /** Further topics read from their beginning when the group has no offset there, whatever `fromBeginning` says (repartition topics). */
  earliestTopics?: string[];
}

/** A consumer in a group; offsets are committed only by `commit`, never automatically. */
export interface GroupConsumer {
  /** Joins the group and calls `handler` for each fetched partition batch, one at a time per partition, in offset order. */
  start(handler: (batch: PartitionBatch, control: BatchControl) => Promise<void>): Promise<void>;
  /** Commits `nextOffset` (the offset of the next record to read) for each partition given, in one request. */
  commit(offsets: Array<{ topic: string; partition: number; nextOffset: string }>): Promise<void>;
  /** Partitions currently assigned to this member, by topic. */
  assignment(): Record<string, number[]>;
  /** Called when the consumer died for good (it will not restart itself). */
  onCrash(listener: (error: Error) => void): void;
  /** Leaves the group (a clean leave: partitions move at once) and closes connections. */
  stop(): Promise<void>;
}

/**
 * A producer with a stable transactional id: the Kafka transaction calls, nothing more. When to
 * fence, how to read and trust the progress marker and how to end a hanging transaction is the
 * protocol in `sink.ts`, the same for every client.
 */
export interface TransactionalProducer {
  readonly transactionalId: string;
  /**
   * Begins a transaction (one at a time). A producer's first call claims the id (InitProducerId):
   * the coordinator bumps the id's epoch, which fences any older producer with the same id and
   * finishes its open transaction. A transaction begun and never sent to is handed out again.
   */
  begin(): Promise<ProducerTransaction>;
  close(): Promise<void>;
}

/** One open transaction; each call fails with a `TransactionError`. */
export interface ProducerTransaction {
  /** Writes `messages` in the transaction, in order. */
  send(messages: Array<{ topic: string; message: OutgoingMessage }>): Promise<void>;
  /** Adds the committed offsets of `marker.group` to the transaction (readable with `KafkaAdmin.committedOffsets`). */
  sendOffsets(marker: TransactionMarker): Promise<void>;
  /** Commits: readers with read_committed see every message and the offsets, or none of them. */
  commit(): Promise<void>;
  /** Aborts: what was sent is never seen by read_committed readers. */
  abort(): Promise<void>;
}

/** Offsets a transaction commits for a group: the sink's progress marker, per source partition the offset after the last record it covers. */
export interface TransactionMarker {
  group: string;
  positions: Array<{ topic: string; partition: number; nextOffset: string }>;
  /**
   * Metadata committed with every position (the unit's note: what it counted, and its event time).
   * Both clients commit it; @confluentinc/kafka-javascript only with our patch to its KafkaJS layer.
   */
  note?: string;
}

/** One partition's offset in a KafkaJS-style `sendOffsets`, with the marker's note as its metadata. */
type OffsetOf = { partition: number; offset: string; metadata?: string };

/** A marker's positions by topic, each with the note as its metadata: the offsets of a KafkaJS-style `sendOffsets`. */
export function offsetTopicsOf(marker: TransactionMarker): Array<{ topic: string; partitions: OffsetOf[] }> {
  const topics = new Map<string, OffsetOf[]>();
  for (const p of marker.positions) {
    let partitions = topics.get(p.topic);
    if (!partitions) topics.set(p.topic, (partitions = []));
    partitions.push({ partition: p.partition, offset: p.nextOffset, ...(marker.note !== undefined ? { metadata: marker.note } : {}) });
  }
  return [...topics].map(([topic, partitions]) => ({ topic, partitions }));
}

/** A committed offset and the metadata committed with it (null: none). */
export interface CommittedMarker {
  offset: string;
  metadata: string | null;
}

/** A plain (non-transactional, idempotent) producer. */
export interface PlainProducer {
  send(topic: string, messages: OutgoingMessage[]): Promise<void>;
  close(): Promise<void>;
}

/** Offsets of one partition. */
export interface PartitionOffsets {
  partition: number;
  /** First offset still stored. */
  low: string;
  /** Offset after the last record (the high watermark). */
  high: string;
}

/** Topic administration and offset lookups. */
export interface KafkaAdmin {
  /** Creates the topic unless it exists (true when it was created), with topic `configs` (`cleanup.policy`, ...). */
  ensureTopic(topic: string, partitions: number, configs?: Record<string, string>): Promise<boolean>;
  deleteTopics(topics: string[]): Promise<void>;
  /** Which of `topics` the cluster does not have. */
  missingTopics(topics: readonly string[]): Promise<string[]>;
  partitionOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** The broker's offset-for-time lookup: per partition, the first offset whose record's timestamp is at or after `timestamp` (ms), else the end offset. */
  offsetsForTime(topic: string, timestamp: number): Promise<Array<{ partition: number; offset: string }>>;
  /**
   * Committed offsets of a group on some partitions of a topic (absent: none committed), read only
   * once no transaction is still committing offsets for them (OffsetFetch with require_stable). Still
   * unstable after `waitMs` (default 30 s): throws `UnstableOffsetsError`.
   */
  committedOffsets(groupId: string, topic: string, partitions: number[], waitMs?: number): Promise<Map<number, string>>;
  /** `committedOffsets` with the metadata committed with each offset (the sink's unit note). */
  committedMarkers(groupId: string, topic: string, partitions: number[], waitMs?: number): Promise<Map<number, CommittedMarker>>;
  /**
   * Sets the committed offsets of a group with no member (a job started from a savepoint reads its
   * sources from there); a `GroupActiveError` when the group has members.
   */
  setGroupOffsets(groupId: string, topic: string, offsets: ReadonlyArray<{ partition: number; offset: number }>): Promise<void>;
  close(): Promise<void>;
}

/** Options of `readAll`. */
export interface ReadAllOptions {
  /** Read only committed records (default true). */
  readCommitted?: boolean;
  /** Give up when no new record arrived for this long (default 10 s). */
  idleTimeoutMs?: number;
}

/** A Kafka cluster connection that makes consumers, producers and admins. */
export interface KafkaClient {
  readonly brokers: string[];
  consumer(options: ConsumerOptions): GroupConsumer;
  transactionalProducer(transactionalId: string): TransactionalProducer;
  producer(): Promise<PlainProducer>;
  admin(): Promise<KafkaAdmin>;
  /**
   * Reads `partitions` of `topic` (default: all) to the end offsets they had when called,
   * read_committed, knowing for sure it reached them (restoring keyed state from a changelog); from
   * the beginning, or from `from`'s offset for the partitions it names (a changelog's tail, what a
   * consumer has not read yet).
   */
  readToEnd(topic: string, partitions?: readonly number[], from?: ReadonlyMap<number, number>): Promise<Array<ConsumedMessage & { partition: number }>>;
  /** Reads every partition of `topic` from the beginning up to its current end (tests, tools). */
  readAll(topic: string, options?: ReadAllOptions): Promise<Array<ConsumedMessage & { partition: number }>>;
}

/** Offsets a transaction is still committing, past the wait: the transaction may be hanging. */
export class UnstableOffsetsError extends SageError {
  constructor(
    readonly groupId: string,
    readonly topic: string,
    cause: unknown,
  ) {
    super("UNSTABLE_OFFSETS", `offsets of group ${groupId} on ${topic} stay unstable: a transaction committing them is still open`, {
      cause,
      retriable: true,
      scope: "job",
    });
  }
}

/** A consumer group's offsets cannot be set while it has members (a job still reads with it). */
export class GroupActiveError extends SageError {
  constructor(
    readonly groupId: string,
    cause: unknown,
  ) {
    super(
      "KAFKA_GROUP_ACTIVE",
      `consumer group ${groupId} has active members, so its offsets cannot be set: stop the job (and its shim) that reads with it first`,
      { cause, retriable: false, input: true, scope: "job" },
    );
  }
}

/**
 * A topic a job reads or writes does not exist. Before a job starts this refuses it (nothing is
 * started); while it runs, a sink's unit retries, so that creating the topic lets the job go on.
 */
export class MissingTopicError extends SageError {
  constructor(
    readonly topic: string,
    /** Who uses it, e.g. `sink "out" of pipeline "p"`. */
    readonly usedBy: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(
      "KAFKA_TOPIC_MISSING",
      `Kafka topic "${topic}" (${usedBy}) does not exist: create it (kafka-topics.sh --create --topic ${topic}, or kafka.create-topics: true to let the shim create it), or fix the topic name`,
      { ...(options.cause !== undefined ? { cause: options.cause } : {}), retriable: options.retriable ?? false, input: true, scope: "job" },
    );
  }
}

/** A call of a transactional producer failed; the transaction is over (aborted or never begun). */
export class TransactionError extends SageError {
  constructor(
    message: string,
    /** True when the broker refused the producer's epoch as old: a newer producer holds the id, or a partition saw a newer epoch. */
    readonly fenced: boolean,
    options: { cause?: unknown } = {},
  ) {
    super("KAFKA_TRANSACTION", message, { ...options, retriable: true, scope: "job" });
  }
}

/**
 * kafkajs' metadata names another leader for a partition than the one its produce call was grouped
 * by: the call was stopped before anything was sent, so that no call ever spans two leaders
 * (`send-chunks.ts`). The sender regroups by `leaders` and sends again.
 */
export class LeaderMovedError extends SageError {
  constructor(
    readonly topic: string,
    readonly partition: number,
    /** The leader the call was grouped by. */
    readonly expected: number,
    /** Each partition's leader (node id, by partition id) as kafkajs now sees it. */
    readonly leaders: readonly number[],
  ) {
    super(
      "KAFKA_LEADER_MOVED",
      `partition ${partition} of ${topic} is led by broker ${leaders[partition] ?? "none"}, not ${expected} as its produce call was grouped by`,
      // Not retriable: kafkajs' retrier reads this field, and retrying the attempt as grouped cannot
      // succeed (a first kill -9 test spent 20 s in such retries); the sender regroups instead.
      { retriable: false, scope: "job" },
    );
  }
}

/** A broker refused the configured SASL credentials: fixing the config helps, retrying does not. */
export class KafkaAuthenticationError extends SageError {
  constructor(
    /** As the broker names it, e.g. `SCRAM-SHA-512`. */
    readonly mechanism: string,
    readonly username: string,
    readonly broker: string,
    detail: string,
    options: { cause?: unknown } = {},
  ) {
    super(
      "KAFKA_AUTHENTICATION",
      `Kafka broker ${broker} refused SASL ${mechanism} authentication of user "${username}": ${detail} ` +
        `(check kafka.sasl.username and the password in kafka.sasl.password-env or kafka.sasl.password-file)`,
      { ...options, retriable: false, input: true, scope: "job" },
    );
  }
}

/** A TLS connection to a broker failed on a certificate (untrusted, expired, refused) or on the protocol. */
export class KafkaTlsError extends SageError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("KAFKA_TLS", message, { ...options, retriable: false, input: true, scope: "job" });
  }
}
