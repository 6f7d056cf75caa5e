/**
 * The kafkajs implementation of our Kafka client interface, with the traps measured on these
 * machines handled here: small retry backoff (transactions otherwise sit in 300 ms waits), sends
 * cut into chunks of one partition below the broker's message size (one oversized send aborts the
 * transaction) and sent in calls of one partition leader each (a send across leaders is retried
 * wrongly; see send-chunks.ts),
 * short session timeouts (kafkajs has no static membership), and crashes surfaced, not swallowed.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import {
  Kafka,
  logLevel,
  type Consumer,
  type Producer,
  type Transaction,
  type LogEntry,
  type IHeaders,
  type KafkaConfig,
  type KafkaMessage,
  type ProducerConfig,
} from "kafkajs";
import type { Logger } from "pino";
import { committedMarkers, type StableOffsetsOptions } from "./stable-offsets.js";
import type {
  BatchControl,
  ConsumedMessage,
  ConsumerOptions,
  GroupConsumer,
  KafkaAdmin,
  KafkaClient,
  OutgoingMessage,
  PartitionBatch,
  PlainProducer,
  ProducerTransaction,
  ReadAllOptions,
  TransactionMarker,
  TransactionalProducer,
} from "./client.js";
import { GroupActiveError, KafkaAuthenticationError, MissingTopicError, TransactionError, offsetTopicsOf } from "./client.js";
import { mechanismName, type KafkaSecurity } from "./security.js";
import { securityCheckOnce } from "./wire.js";
import { Partitioning, leadersOf, namedPartitioner, topicMessagesOf } from "./send-chunks.js";
import { rememberCoordinators } from "./coordinator-cache.js";

const LEVELS: Record<number, "error" | "warn" | "info" | "debug"> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug",
};

function headersOf(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(",") : Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }
  return out;
}

/** A kafkajs message as our interface's `ConsumedMessage`. */
function consumedOf(m: KafkaMessage): ConsumedMessage {
  return { offset: m.offset, key: m.key ?? null, value: m.value ?? null, headers: headersOf(m.headers), timestamp: m.timestamp };
}

/**
 * Our error for what kafkajs threw in a transaction call. kafkajs names a refused epoch by type
 * (INVALID_PRODUCER_EPOCH, PRODUCER_FENCED) or only in the broker's message ("old epoch").
 */
function transactionError(what: string, err: unknown): TransactionError {
  const { message, type } = err as { message?: string; type?: string };
  const text = `${what}: ${message ?? String(err)} (${type ?? "?"})`;
  return new TransactionError(text, /old epoch|INVALID_PRODUCER_EPOCH|PRODUCER_FENCED/.test(text), { cause: err });
}

let unpatchedWarned = false;

/**
 * Warns once per process when the installed kafkajs lacks our read_committed fix
 * (`patches/kafkajs+2.2.4.patch`): patch-package does not run when Sage is installed as another
 * project's dependency. Unpatched, a read_committed read can hand out an aborted transaction's
 * records when two aborted transactions interleave on a partition (two units failing at once).
 */
function warnIfUnpatched(logger: Logger): void {
  if (unpatchedWarned) return;
  unpatchedWarned = true;
  let source = "";
  try {
    source = readFileSync(createRequire(import.meta.url).resolve("kafkajs/src/consumer/filterAbortedMessages.js"), "utf8");
  } catch {
    return;
  }
  if (/\.sort\(/.test(source)) return;
  logger.warn(
    { component: "kafkajs", patch: "patches/kafkajs+2.2.4.patch" },
    "kafkajs is not patched: a read_committed read can return records of aborted transactions that interleave " +
      "(exactly-once outputs may repeat after a broker failure). Apply Sage's patches/ with patch-package",
  );
}

/** Options of `createKafkajsClient`. */
export interface KafkajsClientOptions {
  brokers: string[];
  clientId?: string;
  logger?: Logger;
  /** TLS and SASL (`kafkaSecurityOf`); none: plaintext. */
  security?: KafkaSecurity;
  /** Replicas of the topics `ensureTopic` creates (default 1). */
  replicationFactor?: number;
}

/** The one place the kafkajs client options are built: every consumer, producer and admin comes from them. */
export function kafkajsConfigOf(options: KafkajsClientOptions): KafkaConfig {
  const log = options.logger?.child({ component: "kafkajs" });
  const { ssl, sasl } = options.security ?? {};
  return {
    clientId: options.clientId ?? "sage",
    brokers: options.brokers,
    connectionTimeout: 3_000,
    retry: { initialRetryTime: 100, retries: 8 },
    ...(ssl ? { ssl } : {}),
    ...(sasl ? { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as KafkaConfig["sasl"] } : {}),
    logLevel: log ? logLevel.WARN : logLevel.NOTHING,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        // Transactions give the guarantee here (a failed send aborts the transaction and the batch is retried whole).
        if (message.startsWith("Limiting retries for the idempotent producer")) return;
        log?.[LEVELS[level] ?? "info"](rest, message);
      },
  };
}

/**
 * Runs a kafkajs connect, first checking the secured cluster's settings once (`checkSecurity`: a
 * refused certificate is a clear error now, not half a minute of retries), and turns a refused
 * SASL login into our `KafkaAuthenticationError`.
 */
function connector(options: KafkajsClientOptions): <T>(connect: () => Promise<T>) => Promise<T> {
  const security = options.security ?? {};
  const checked = securityCheckOnce(options.brokers, options.clientId ?? "sage", security);
  return async (connect) => {
    await checked();
    try {
      return await connect();
    } catch (err) {
      const e = err as { name?: string; message?: string };
      if (security.sasl && e.name === "KafkaJSSASLAuthenticationError") {
        throw new KafkaAuthenticationError(mechanismName(security.sasl.mechanism), security.sasl.username, options.brokers.join(","), e.message ?? "", {
          cause: err,
        });
      }
      throw err;
    }
  };
}

/** A kafkajs transaction behind our interface; `onEnd` tells the producer it may begin another. */
class KafkajsTransaction implements ProducerTransaction {
  /** False until something was sent: kafkajs begins a transaction locally, so an unused one can be handed out again. */
  used = false;

  constructor(
    private readonly txn: Transaction,
    readonly transactionalId: string,
    private readonly partitioning: Partitioning,
    private readonly onEnd: (t: KafkajsTransaction) => void,
  ) {}

  async send(messages: Array<{ topic: string; message: OutgoingMessage }>): Promise<void> {
    this.used = true;
    try {
      await this.partitioning.send(messages, (call) => this.txn.sendBatch(topicMessagesOf(call)));
    } catch (err) {
      throw transactionError("send", err);
    }
  }

  async sendOffsets(marker: TransactionMarker): Promise<void> {
    this.used = true;
    try {
      await this.txn.sendOffsets({ consumerGroupId: marker.group, topics: offsetTopicsOf(marker) });
    } catch (err) {
      throw transactionError("send offsets", err);
    }
  }

  async commit(): Promise<void> {
    this.onEnd(this);
    try {
      await this.txn.commit();
    } catch (err) {
      throw transactionError("commit", err);
    }
  }

  async abort(): Promise<void> {
    this.onEnd(this);
    try {
      await this.txn.abort();
    } catch (err) {
      throw transactionError("abort", err);
    }
  }
}

/** Runs a kafkajs connect call (see `connector`). */
type Connect = <T>(connect: () => Promise<T>) => Promise<T>;

/** How the sink's kafkajs transactional producers are configured (the benches that measure a sink transaction use it too). */
export function transactionalProducerConfig(transactionalId: string): ProducerConfig {
  return {
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60_000,
    createPartitioner: namedPartitioner,
    // Backoff capped at 1 s, as the Java producer's retry.backoff.max.ms: a call retrying a dead leader
    // notices the new one within a second of the election (uncapped, one kill -9 test saw a 12.4 s wait).
    // 30 retries keep about the old window (~20-30 s) before the transaction fails and its unit is retried.
    retry: { initialRetryTime: 5, maxRetryTime: 1_000, retries: 30 },
  };
}

class KafkajsTransactionalProducer implements TransactionalProducer {
  private producer: Producer | null = null;
  private open: KafkajsTransaction | null = null;
  /** Set by `close`: a connect still under way when it came must not leave a connection behind. */
  private closed = false;

  constructor(
    private readonly kafka: Kafka,
    readonly transactionalId: string,
    private readonly connect: Connect,
    private readonly partitioning: Partitioning,
  ) {}

  async begin(): Promise<ProducerTransaction> {
    if (this.open && !this.open.used) return this.open;
    try {
      // The first transaction() of a producer sends InitProducerId: the coordinator bumps the epoch,
      // which fences an older producer with this id and finishes its open transaction first.
      const txn = await (await this.connected()).transaction();
      this.open = new KafkajsTransaction(txn, this.transactionalId, this.partitioning, (t) => {
        if (this.open === t) this.open = null;
      });
      return this.open;
    } catch (err) {
      throw err instanceof TransactionError ? err : transactionError("begin", err);
    }
  }

  private async connected(): Promise<Producer> {
    if (this.producer) return this.producer;
    const p = this.kafka.producer(transactionalProducerConfig(this.transactionalId));
    try {
      await this.connect(() => p.connect());
    } catch (err) {
      await p.disconnect().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await p.disconnect().catch(() => undefined);
      throw new TransactionError(`transactional producer ${this.transactionalId} was closed while it connected`, false);
    }
    this.producer = p;
    return p;
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.producer;
    this.producer = null;
    this.open = null;
    await p?.disconnect().catch(() => undefined);
  }
}

class KafkajsGroupConsumer implements GroupConsumer {
  private readonly consumer: Consumer;
  private readonly crashListeners: Array<(e: Error) => void> = [];
  private assigned: Record<string, number[]> = {};

  constructor(
    kafka: Kafka,
    private readonly options: ConsumerOptions,
    private readonly connect: Connect,
  ) {
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(options.sessionTimeoutMs * 2, 10_000),
      heartbeatInterval: Math.max(500, Math.floor(options.sessionTimeoutMs / 5)),
      minBytes: options.minBytes,
      maxWaitTimeInMs: options.maxWaitMs,
      maxBytesPerPartition: options.maxBytesPerPartition,
      readUncommitted: options.readCommitted === false,
      retry: { initialRetryTime: 100, retries: 8 },
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.assigned = Object.fromEntries(Object.entries(e.payload.memberAssignment).map(([t, ps]) => [t, [...ps]]));
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      // kafkajs restarts itself after retriable errors; anything else leaves a dead consumer behind.
      if (!e.payload.restart) for (const l of this.crashListeners) l(e.payload.error);
    });
  }

  async start(handler: (batch: PartitionBatch, control: BatchControl) => Promise<void>): Promise<void> {
    await this.connect(() => this.consumer.connect());
    await this.consumer.subscribe({ topics: this.options.topics, fromBeginning: this.options.fromBeginning });
    const earliest = this.options.earliestTopics ?? [];
    if (earliest.length > 0) await this.consumer.subscribe({ topics: earliest, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.concurrency,
      eachBatch: async (payload) => {
        const { batch } = payload;
        if (batch.messages.length === 0) return;
        const messages: ConsumedMessage[] = batch.messages.map(consumedOf);
        await handler(
          { topic: batch.topic, partition: batch.partition, messages },
          {
            active: () => payload.isRunning() && !payload.isStale(),
            resolve: (offset) => payload.resolveOffset(offset),
            pause: () => payload.pause(),
          },
        );
      },
    });
  }

  async commit(offsets: Array<{ topic: string; partition: number; nextOffset: string }>): Promise<void> {
    await this.consumer.commitOffsets(offsets.map(({ topic, partition, nextOffset }) => ({ topic, partition, offset: nextOffset })));
  }

  assignment(): Record<string, number[]> {
    return this.assigned;
  }

  onCrash(listener: (error: Error) => void): void {
    this.crashListeners.push(listener);
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}

/** Creates the kafkajs-backed client. */
export function createKafkajsClient(options: KafkajsClientOptions): KafkaClient {
  const clientId = options.clientId ?? "sage";
  if (options.logger) warnIfUnpatched(options.logger);
  const kafka = new Kafka(kafkajsConfigOf(options));
  /** Transactional producers' own: their coordinator lookups are remembered (coordinator-cache.ts). */
  const transactional = rememberCoordinators(new Kafka(kafkajsConfigOf(options)));
  const connect = connector(options);
  /** How `committedOffsets` and `committedMarkers` reach the group coordinator (our own OffsetFetch). */
  const stableOptions = (waitMs?: number): StableOffsetsOptions => ({
    brokers: options.brokers,
    clientId,
    deadlineMs: waitMs,
    ...(options.security ? { security: options.security } : {}),
  });
  const partitioning = new Partitioning(async (topic) => {
    const admin = kafka.admin();
    await connect(() => admin.connect());
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return leadersOf(topics[0]!.partitions);
    } catch (err) {
      // Retriable: whoever creates the topic lets the unit through on its next attempt.
      if ((err as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION")
        throw new MissingTopicError(topic, "written by a producer", { retriable: true, cause: err });
      throw err;
    } finally {
      await admin.disconnect();
    }
  });
  return {
    brokers: options.brokers,
    consumer: (o) => new KafkajsGroupConsumer(kafka, o, connect),
    transactionalProducer: (id) => new KafkajsTransactionalProducer(transactional, id, connect, partitioning),
    async producer(): Promise<PlainProducer> {
      const p = kafka.producer({ idempotent: true, createPartitioner: namedPartitioner, retry: { initialRetryTime: 50, retries: 10 } });
      await connect(() => p.connect());
      return {
        async send(topic, messages) {
          await partitioning.send(
            messages.map((message) => ({ topic, message })),
            (call) => p.sendBatch(topicMessagesOf(call)),
          );
        },
        close: () => p.disconnect(),
      };
    },
    async admin(): Promise<KafkaAdmin> {
      const a = kafka.admin();
      await connect(() => a.connect());
      return {
        async ensureTopic(topic, partitions, configs = {}) {
          // A loaded broker may answer UNKNOWN_TOPIC_OR_PARTITION while the new topic's leaders settle: retry what is retriable.
          for (let attempt = 1; ; attempt++) {
            try {
              if ((await a.listTopics()).includes(topic)) return false;
              const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
              return await a.createTopics({
                topics: [{ topic, numPartitions: partitions, replicationFactor: options.replicationFactor ?? 1, configEntries }],
                waitForLeaders: true,
              });
            } catch (err) {
              if (attempt >= 8 || !(err as { retriable?: boolean }).retriable) throw err;
              await new Promise((r) => setTimeout(r, 250 * attempt));
            }
          }
        },
        deleteTopics: (topics) => a.deleteTopics({ topics }),
        async missingTopics(topics) {
          const have = new Set(await a.listTopics());
          return topics.filter((t) => !have.has(t));
        },
        async partitionOffsets(topic) {
          const offsets = await a.fetchTopicOffsets(topic);
          return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high })).sort((x, y) => x.partition - y.partition);
        },
        async offsetsForTime(topic, timestamp) {
          const offsets = await a.fetchTopicOffsetsByTimestamp(topic, timestamp);
          return offsets.map((o) => ({ partition: o.partition, offset: o.offset })).sort((x, y) => x.partition - y.partition);
        },
        async committedOffsets(groupId, topic, partitions, waitMs) {
          const markers = await committedMarkers(stableOptions(waitMs), groupId, topic, partitions);
          return new Map([...markers].map(([p, m]) => [p, m.offset]));
        },
        committedMarkers: (groupId, topic, partitions, waitMs) => committedMarkers(stableOptions(waitMs), groupId, topic, partitions),
        async setGroupOffsets(groupId, topic, offsets) {
          try {
            await a.setOffsets({ groupId, topic, partitions: offsets.map((o) => ({ partition: o.partition, offset: String(o.offset) })) });
          } catch (err) {
            // kafkajs refuses before asking the broker, naming the group's state.
            if (/running|active|not empty/i.test((err as Error).message)) throw new GroupActiveError(groupId, err);
            throw err;
          }
        },
        close: () => a.disconnect(),
      };
    },
    async readToEnd(topic: string, partitions?: readonly number[], from?: ReadonlyMap<number, number>) {
      const admin = kafka.admin();
      await connect(() => admin.connect());
      let ends: Array<{ partition: number; low: string; high: string }>;
      try {
        ends = await admin.fetchTopicOffsets(topic);
      } finally {
        await admin.disconnect();
      }
      const wanted = (p: number): boolean => !partitions || partitions.includes(p);
      // The end of each partition as of now; its last offset is often a transaction marker, which no batch hands to eachBatch.
      const start = (o: { partition: number; low: string }): number => Math.max(Number(o.low), from?.get(o.partition) ?? 0);
      const targets = new Map(ends.filter((o) => wanted(o.partition) && Number(o.high) > start(o)).map((o) => [o.partition, Number(o.high)] as const));
      const seeks = ends.filter((o) => targets.has(o.partition) && from?.has(o.partition)).map((o) => ({ partition: o.partition, offset: start(o) }));
      const out: Array<ConsumedMessage & { partition: number }> = [];
      if (targets.size === 0) return out;
      const consumer = kafka.consumer({ groupId: `sage-read-${randomUUID()}`, maxWaitTimeInMs: 200 });
      let finished!: () => void;
      const reachedAll = new Promise<void>((r) => (finished = r));
      // Batch events come for marker-only batches too: they tell how far each partition was read.
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        const target = payload.topic === topic ? targets.get(payload.partition) : undefined;
        if (target === undefined || Number(payload.lastOffset) + 1 < target) return;
        targets.delete(payload.partition);
        if (targets.size === 0) finished();
      });
      await connect(() => consumer.connect());
      let guard: NodeJS.Timeout | undefined;
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          eachBatch: async ({ batch }) => {
            if (!wanted(batch.partition)) return;
            const first = from?.get(batch.partition) ?? 0;
            for (const m of batch.messages) {
              // A fetch made before the seek took hold starts earlier: its records before the start are not wanted.
              if (Number(m.offset) < first) continue;
              out.push({ ...consumedOf(m), partition: batch.partition });
            }
          },
        });
        // A tail read starts at its offsets (a fetch made before the seek took hold is filtered above).
        for (const s of seeks) consumer.seek({ topic, partition: s.partition, offset: String(s.offset) });
        await Promise.race([
          reachedAll,
          new Promise<never>((_, reject) => {
            guard = setTimeout(
              () => reject(new Error(`reading ${topic} to its end: partitions ${[...targets.keys()].join(", ")} not read to their end within 120 s`)),
              120_000,
            );
          }),
        ]);
      } finally {
        clearTimeout(guard);
        await consumer.disconnect();
      }
      return out;
    },
    async readAll(topic: string, o: ReadAllOptions = {}) {
      const consumer = kafka.consumer({ groupId: `sage-read-${randomUUID()}`, readUncommitted: o.readCommitted === false, maxWaitTimeInMs: 200 });
      const out: Array<ConsumedMessage & { partition: number }> = [];
      let last = Date.now();
      await connect(() => consumer.connect());
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        await consumer.run({
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) {
              out.push({ ...consumedOf(m), partition: batch.partition });
            }
            last = Date.now();
          },
        });
        const idle = o.idleTimeoutMs ?? 10_000;
        // Caught up once nothing new arrived for a while (offsets have gaps for transaction markers, so counting them cannot tell).
        while (Date.now() - last < Math.min(idle, out.length > 0 ? 1_500 : idle)) await new Promise((r) => setTimeout(r, 100));
      } finally {
        await consumer.disconnect();
      }
      return out;
    },
  };
}
