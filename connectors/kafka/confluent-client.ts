/**
 * The `@confluentinc/kafka-javascript` (librdkafka) implementation of our Kafka client interface
 * (`kafka.client: confluent`). Producers, the group consumer and the admin use the package's
 * kafkajs-like API; reading a topic to its end uses librdkafka's own consumer, which assigns
 * partitions without a group and says when it reached a partition's end. The native binding is
 * built by `scripts/install-confluent-kafka.sh`, so the package is loaded only when this client is
 * asked for: a kafkajs user never needs it.
 */
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";
import type * as Confluent from "@confluentinc/kafka-javascript";
import type { KafkaJS, KafkaConsumer as RdKafkaConsumer, LibrdKafkaError, Message as RdKafkaMessage } from "@confluentinc/kafka-javascript";
import type { Logger } from "pino";
import { ConfigError } from "../../core/errors.js";
import { committedMarkers } from "./stable-offsets.js";
import type {
  BatchControl,
  ConsumedMessage,
  ConsumerOptions,
  GroupConsumer,
  KafkaAdmin,
  KafkaClient,
  OutgoingMessage,
  PartitionBatch,
  PartitionOffsets,
  PlainProducer,
  ProducerTransaction,
  ReadAllOptions,
  TransactionMarker,
  TransactionalProducer,
  CommittedMarker,
} from "./client.js";
import { GroupActiveError, KafkaAuthenticationError, TransactionError, offsetTopicsOf } from "./client.js";
import { mechanismName, type KafkaSecurity } from "./security.js";
import { securityCheckOnce } from "./wire.js";

type ConfluentModule = typeof Confluent;
type Kafka = KafkaJS.Kafka;
/** librdkafka settings by name (its CONFIGURATION table). */
type RdKafkaSettings = Record<string, string | number | boolean>;

let loaded: ConfluentModule | null = null;

/** The package, loaded on first use; a clear error when its native binding was not built. */
function confluentModule(): ConfluentModule {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)("@confluentinc/kafka-javascript") as ConfluentModule;
  } catch (err) {
    throw new ConfigError(
      `kafka.client = "confluent": @confluentinc/kafka-javascript does not load (${(err as Error).message.split("\n")[0]}): ` +
        "build its native binding with `bash scripts/install-confluent-kafka.sh`, or use kafka.client: kafkajs",
    );
  }
  return loaded;
}

/** Options of `createConfluentClient` (the same as kafkajs'). */
export interface ConfluentClientOptions {
  brokers: string[];
  clientId?: string;
  logger?: Logger;
  /** TLS and SASL (`kafkaSecurityOf`); none: plaintext. */
  security?: KafkaSecurity;
  /** Replicas of the topics `ensureTopic` creates (default 1). */
  replicationFactor?: number;
}

function pem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((v) => pem(v)).join("\n");
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}

/**
 * The librdkafka settings every client of the cluster shares: bootstrap servers, TLS (PEM text from
 * the files `kafkaSecurityOf` read) and SASL. librdkafka checks the broker's host name against its
 * certificate itself and cannot be told another name, so `kafka.ssl.server-name` is refused.
 */
export function confluentSettingsOf(options: ConfluentClientOptions): RdKafkaSettings {
  const { ssl, sasl } = options.security ?? {};
  if (ssl?.servername) {
    throw new ConfigError(
      "kafka.ssl.server-name is not supported with kafka.client: confluent (librdkafka verifies the broker address's own host name); use kafka.client: kafkajs",
    );
  }
  const protocol = ssl ? (sasl ? "sasl_ssl" : "ssl") : sasl ? "sasl_plaintext" : "plaintext";
  const out: RdKafkaSettings = {
    "bootstrap.servers": options.brokers.join(","),
    "client.id": options.clientId ?? "sage",
    "security.protocol": protocol,
    "socket.connection.setup.timeout.ms": 10_000,
    // Retriable errors (a leader moving, a coordinator loading) are retried by librdkafka after this pause.
    "retry.backoff.ms": 20,
    "retry.backoff.max.ms": 1_000,
  };
  const ca = pem(ssl?.ca);
  const cert = pem(ssl?.cert);
  const key = pem(ssl?.key);
  if (ca) out["ssl.ca.pem"] = ca;
  if (cert) out["ssl.certificate.pem"] = cert;
  if (key) out["ssl.key.pem"] = key;
  if (sasl) {
    out["sasl.mechanisms"] = mechanismName(sasl.mechanism);
    out["sasl.username"] = sasl.username;
    out["sasl.password"] = sasl.password;
  }
  return out;
}

/** The package's logger interface over pino, at warn and above (librdkafka's own info lines are noise here). */
function loggerOf(log: Logger | undefined, mod: ConfluentModule): { logLevel: KafkaJS.logLevel; logger?: KafkaJS.Logger } {
  if (!log) return { logLevel: mod.KafkaJS.logLevel.NOTHING };
  const child = log.child({ component: "confluent-kafka" });
  const logger: KafkaJS.Logger = {
    info: (message, extra) => child.debug(extra ?? {}, message),
    error: (message, extra) => child.error(extra ?? {}, message),
    warn: (message, extra) => child.warn(extra ?? {}, message),
    debug: (message, extra) => child.debug(extra ?? {}, message),
    namespace: () => logger,
    setLogLevel: () => undefined,
  };
  return { logLevel: mod.KafkaJS.logLevel.WARN, logger };
}

/** A librdkafka error code of `err`, if it carries one. */
function codeOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * Our error for what librdkafka reported in a transaction call. A refused epoch comes as
 * PRODUCER_FENCED or INVALID_PRODUCER_EPOCH from a broker, or as librdkafka's own fatal
 * `_FENCED` once it stopped the producer for it.
 */
function transactionError(what: string, err: unknown, fatal?: unknown): TransactionError {
  const codes = confluentModule().KafkaJS.ErrorCodes;
  const isFenced = (e: unknown): boolean => {
    const code = codeOf(e);
    return (
      code === codes.ERR__FENCED ||
      code === codes.ERR_PRODUCER_FENCED ||
      code === codes.ERR_INVALID_PRODUCER_EPOCH ||
      /fenced|old epoch|INVALID_PRODUCER_EPOCH/i.test((e as { message?: string } | null)?.message ?? "")
    );
  };
  const message = (err as { message?: string } | null)?.message ?? String(err);
  // After a fatal error librdkafka fails the calls still under way with their own codes (a send's
  // queued messages are purged): the fatal error it reported says why.
  const because = fatal === undefined ? "" : `; the producer stopped on: ${(fatal as Error).message}`;
  const text = `${what}: ${message} (code ${codeOf(err) ?? "?"})${because}`;
  return new TransactionError(text, isFenced(err) || (fatal !== undefined && isFenced(fatal)), { cause: err });
}

/** Turns a refused SASL login into our `KafkaAuthenticationError`; other errors pass. */
function authenticationError(options: ConfluentClientOptions, err: unknown): unknown {
  const sasl = options.security?.sasl;
  if (!sasl) return err;
  const codes = confluentModule().KafkaJS.ErrorCodes;
  const code = codeOf(err);
  const message = (err as Error).message ?? String(err);
  if (code === codes.ERR__AUTHENTICATION || code === codes.ERR_SASL_AUTHENTICATION_FAILED || /SASL authentication (error|failed)/i.test(message)) {
    return new KafkaAuthenticationError(mechanismName(sasl.mechanism), sasl.username, options.brokers.join(","), message, { cause: err });
  }
  return err;
}

/** Runs a connect call (see `connector`). */
type Connect = <T>(connect: () => Promise<T>) => Promise<T>;

/**
 * Connects after checking the secured cluster's settings once (`checkSecurity`: a refused
 * certificate is a clear error now, not librdkafka's reconnects), naming a refused login.
 */
function connector(options: ConfluentClientOptions): Connect {
  const security = options.security ?? {};
  const checked = securityCheckOnce(options.brokers, options.clientId ?? "sage", security);
  return async (connect) => {
    await checked();
    try {
      return await connect();
    } catch (err) {
      throw authenticationError(options, err);
    }
  };
}

function headersOf(h: KafkaJS.IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(",") : Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }
  return out;
}

function consumedOf(m: KafkaJS.KafkaMessage): ConsumedMessage {
  return { offset: m.offset, key: m.key ?? null, value: m.value ?? null, headers: headersOf(m.headers), timestamp: m.timestamp };
}

/** A message of librdkafka's own consumer as ours. */
function rdConsumedOf(m: RdKafkaMessage): ConsumedMessage & { partition: number } {
  const headers: Record<string, string> = {};
  for (const h of m.headers ?? []) {
    for (const [k, v] of Object.entries(h)) headers[k] = Buffer.isBuffer(v) ? v.toString("utf8") : String(v);
  }
  const key = m.key === undefined || m.key === null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key);
  return { partition: m.partition, offset: String(m.offset), key, value: m.value ?? null, headers, timestamp: String(m.timestamp ?? "") };
}

/** Messages per produce call: librdkafka queues each before the call awaits their delivery, and its queue holds 100,000. */
const SEND_CALL_MESSAGES = 10_000;

function toConfluent(m: OutgoingMessage): KafkaJS.Message {
  return {
    key: m.key,
    value: m.value,
    ...(m.headers ? { headers: m.headers } : {}),
    ...(m.timestamp !== undefined ? { timestamp: m.timestamp } : {}),
    ...(m.partition !== undefined ? { partition: m.partition } : {}),
  };
}

/** Produces `messages` (in their order: one call per run of the same topic) and awaits their delivery. */
async function produce(producer: KafkaJS.Producer, messages: ReadonlyArray<{ topic: string; message: OutgoingMessage }>): Promise<void> {
  let start = 0;
  while (start < messages.length) {
    const topic = messages[start]!.topic;
    let end = start + 1;
    while (end < messages.length && end - start < SEND_CALL_MESSAGES && messages[end]!.topic === topic) end++;
    await producer.send({ topic, messages: messages.slice(start, end).map((m) => toConfluent(m.message)) });
    start = end;
  }
}

/** Producer settings: the murmur2 partitioner of the Java client and kafkajs, so a key lands where theirs would. */
const PRODUCER_SETTINGS: RdKafkaSettings = { partitioner: "murmur2_random", "linger.ms": 5 };

/** One open transaction of a confluent producer; `onEnd` tells the producer it may begin another. */
class ConfluentTransaction implements ProducerTransaction {
  /** False until something was sent: librdkafka begins a transaction locally, so an unused one can be handed out again. */
  used = false;

  constructor(
    private readonly producer: KafkaJS.Producer,
    private readonly markerConsumer: (group: string) => Promise<KafkaJS.Consumer>,
    private readonly onEnd: (t: ConfluentTransaction) => void,
    /** The fatal error the producer reported, if it did. */
    private readonly fatal: () => unknown,
  ) {}

  /**
   * Our error for a failed call. Messages purged from the queue mean librdkafka stopped the producer
   * on a fatal error, whose event may come a moment after: it is waited for, briefly, to say why.
   */
  private async failure(what: string, err: unknown): Promise<TransactionError> {
    if (this.fatal() === undefined && codeOf(err) === confluentModule().KafkaJS.ErrorCodes.ERR__PURGE_QUEUE) {
      for (let i = 0; i < 20 && this.fatal() === undefined; i++) await new Promise((r) => setTimeout(r, 25));
    }
    return transactionError(what, err, this.fatal());
  }

  async send(messages: Array<{ topic: string; message: OutgoingMessage }>): Promise<void> {
    this.used = true;
    try {
      await produce(this.producer, messages);
    } catch (err) {
      throw await this.failure("send", err);
    }
  }

  async sendOffsets(marker: TransactionMarker): Promise<void> {
    this.used = true;
    try {
      const consumer = await this.markerConsumer(marker.group);
      // The note goes as the offsets' metadata (our patch to the KafkaJS layer passes it on to librdkafka).
      await this.producer.sendOffsets({ consumer, topics: offsetTopicsOf(marker) });
    } catch (err) {
      throw await this.failure("send offsets", err);
    }
  }

  async commit(): Promise<void> {
    this.onEnd(this);
    try {
      await this.producer.commit();
    } catch (err) {
      throw await this.failure("commit", err);
    }
  }

  async abort(): Promise<void> {
    this.onEnd(this);
    try {
      await this.producer.abort();
    } catch (err) {
      throw await this.failure("abort", err);
    }
  }
}

class ConfluentTransactionalProducer implements TransactionalProducer {
  private producer: Promise<KafkaJS.Producer> | null = null;
  private open: ConfluentTransaction | null = null;
  /**
   * librdkafka sends a transaction's offsets for the group of a consumer it is given (its group
   * metadata). A marker's group has no members, so a consumer that never joins it carries its name:
   * the broker takes offsets with no generation from a group without members, as kafkajs sends them.
   */
  private readonly markers = new Map<string, Promise<KafkaJS.Consumer>>();
  /** Set by `close`: a connect still under way when it came must not leave a connection behind. */
  private closed = false;
  /** The fatal error librdkafka reported (fenced, most often): the producer is unusable from then on. */
  private fatal: unknown = undefined;

  constructor(
    private readonly kafka: Kafka,
    readonly transactionalId: string,
    private readonly connect: Connect,
  ) {}

  async begin(): Promise<ProducerTransaction> {
    if (this.open && !this.open.used) return this.open;
    try {
      // connect() sends InitProducerId: the coordinator bumps the epoch, which fences an older
      // producer with this id and finishes its open transaction first.
      const producer = await this.connected();
      await producer.transaction();
      this.open = new ConfluentTransaction(
        producer,
        (group) => this.markerConsumer(group),
        (t) => {
          if (this.open === t) this.open = null;
        },
        () => this.fatal,
      );
      return this.open;
    } catch (err) {
      throw err instanceof TransactionError ? err : transactionError("begin", err);
    }
  }

  private connected(): Promise<KafkaJS.Producer> {
    this.producer ??= this.newProducer().catch((err: unknown) => {
      this.producer = null;
      throw err;
    });
    return this.producer;
  }

  private async newProducer(): Promise<KafkaJS.Producer> {
    const p = this.kafka.producer({
      ...PRODUCER_SETTINGS,
      kafkaJS: { transactionalId: this.transactionalId, idempotent: true, maxInFlightRequests: 5, transactionTimeout: 60_000 },
    });
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
    // The package logs librdkafka's error events; which one was fatal is only known from them.
    (p as unknown as { _getInternalClient(): NodeJS.EventEmitter })._getInternalClient().on("event.error", (err: { fatal?: boolean; message?: string }) => {
      // librdkafka names its fencing in the event's message (code -1, not always flagged fatal).
      if (err.fatal || /fenced/i.test(err.message ?? "")) this.fatal ??= err;
    });
    return p;
  }

  private markerConsumer(group: string): Promise<KafkaJS.Consumer> {
    let c = this.markers.get(group);
    if (!c) {
      const consumer = this.kafka.consumer({ kafkaJS: { groupId: group, autoCommit: false } });
      c = this.connect(() => consumer.connect()).then(() => consumer);
      c.catch(() => this.markers.delete(group));
      this.markers.set(group, c);
    }
    return c;
  }

  async close(): Promise<void> {
    this.closed = true;
    const p = this.producer;
    const markers = [...this.markers.values()];
    this.producer = null;
    this.open = null;
    this.markers.clear();
    await Promise.allSettled([p?.then((producer) => producer.disconnect()), ...markers.map((m) => m.then((consumer) => consumer.disconnect()))]);
  }
}

class ConfluentGroupConsumer implements GroupConsumer {
  private readonly consumer: KafkaJS.Consumer;
  private readonly crashListeners: Array<(e: Error) => void> = [];
  /** Set by `stop`: a batch held by a pause is let go. */
  private stopping = false;

  constructor(
    kafka: Kafka,
    private readonly options: ConsumerOptions,
    private readonly connect: Connect,
  ) {
    const earliest = new Set(options.earliestTopics ?? []);
    this.consumer = kafka.consumer({
      // The shim cuts its own micro-batches: a handler call takes what was fetched for the partition.
      "js.consumer.max.batch.size": -1,
      "partition.assignment.strategy": "roundrobin",
      ...(earliest.size > 0 && !options.fromBeginning ? { rebalance_cb: this.startEarliest(earliest) } : {}),
      kafkaJS: {
        groupId: options.groupId,
        fromBeginning: options.fromBeginning,
        autoCommit: false,
        sessionTimeout: options.sessionTimeoutMs,
        rebalanceTimeout: Math.max(options.sessionTimeoutMs * 2, 10_000),
        heartbeatInterval: Math.max(500, Math.floor(options.sessionTimeoutMs / 5)),
        minBytes: options.minBytes,
        maxWaitTimeInMs: options.maxWaitMs,
        maxBytesPerPartition: options.maxBytesPerPartition,
        readUncommitted: options.readCommitted === false,
      },
    });
  }

  /**
   * librdkafka resets every topic of a consumer the same way when the group has no offset; the
   * `earliestTopics` start from their beginning instead: their assigned partitions without a
   * committed offset are assigned at the beginning.
   */
  private startEarliest(earliest: ReadonlySet<string>) {
    const BEGINNING = -2;
    return async (err: LibrdKafkaError, assignment: Array<{ topic: string; partition: number; offset?: number }>) => {
      if (err.code !== confluentModule().CODES.ERRORS.ERR__ASSIGN_PARTITIONS) return null;
      const wanted = assignment.filter((a) => earliest.has(a.topic));
      if (wanted.length === 0) return null;
      const committed = await this.consumer.committed(
        wanted.map((a) => ({ topic: a.topic, partition: a.partition })),
        10_000,
      );
      const none = new Set(committed.filter((c) => Number(c.offset) < 0).map((c) => `${c.topic}:${c.partition}`));
      return assignment.map((a) => (none.has(`${a.topic}:${a.partition}`) ? { ...a, offset: BEGINNING } : a));
    };
  }

  async start(handler: (batch: PartitionBatch, control: BatchControl) => Promise<void>): Promise<void> {
    await this.connect(() => this.consumer.connect());
    await this.consumer.subscribe({ topics: [...this.options.topics, ...(this.options.earliestTopics ?? [])] });
    void this.consumer
      .run({
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.options.concurrency,
        eachBatch: (payload) => this.deliver(payload, handler),
      })
      .catch((err: unknown) => {
        // librdkafka retries what is retriable itself: a run that ends with an error is over for good.
        for (const l of this.crashListeners) l(err instanceof Error ? err : new Error(String(err)));
      });
  }

  /**
   * Hands a fetched batch to `handler`. A pause holds this partition's handler call until resumed
   * and then offers the unresolved records again, instead of the package's pause: its pause, resume
   * and seek back each stop every partition's worker and refetch (the shim pauses a partition
   * whenever its workflow's queue is full, so that halved the job's throughput).
   */
  private async deliver(payload: KafkaJS.EachBatchPayload, handler: (batch: PartitionBatch, control: BatchControl) => Promise<void>): Promise<void> {
    const { batch } = payload;
    const live = () => payload.isRunning() && !payload.isStale() && !this.stopping;
    let messages = batch.messages.map(consumedOf);
    while (messages.length > 0) {
      let paused: Promise<void> | null = null;
      let resume: () => void = () => undefined;
      let resolved = -1n;
      await handler(
        { topic: batch.topic, partition: batch.partition, messages },
        {
          active: live,
          resolve: (offset) => {
            payload.resolveOffset(offset);
            if (BigInt(offset) > resolved) resolved = BigInt(offset);
          },
          pause: () => {
            paused ??= new Promise<void>((r) => (resume = r));
            return () => resume();
          },
        },
      );
      if (paused === null) return;
      // Held, not lost: a revoked partition or a stop ends the wait (unresolved records are read again).
      let resumed = false;
      void (paused as Promise<void>).then(() => (resumed = true));
      while (!resumed && live()) await new Promise((r) => setTimeout(r, 20));
      if (!live()) return;
      messages = messages.filter((m) => BigInt(m.offset) > resolved);
    }
  }

  async commit(offsets: Array<{ topic: string; partition: number; nextOffset: string }>): Promise<void> {
    await this.consumer.commitOffsets(offsets.map(({ topic, partition, nextOffset }) => ({ topic, partition, offset: nextOffset })));
  }

  assignment(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    try {
      for (const { topic, partition } of this.consumer.assignment()) (out[topic] ??= []).push(partition);
    } catch {
      // Not connected (yet, or any more): nothing assigned.
    }
    return out;
  }

  onCrash(listener: (error: Error) => void): void {
    this.crashListeners.push(listener);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer.disconnect();
  }
}

/** The end offsets of a topic's partitions (read_committed: last stable offsets, as kafkajs' admin reads them). */
async function topicOffsets(admin: KafkaJS.Admin, topic: string): Promise<PartitionOffsets[]> {
  const offsets = await admin.fetchTopicOffsets(topic, { isolationLevel: confluentModule().IsolationLevel.READ_COMMITTED });
  return offsets.map((o) => ({ partition: o.partition, low: o.low, high: o.high })).sort((x, y) => x.partition - y.partition);
}

/** librdkafka's own consumer, assigned partitions without a group, reporting each partition's end. */
async function assignedReader(
  options: ConfluentClientOptions,
  connect: Connect,
  readCommitted: boolean,
): Promise<{ reader: RdKafkaConsumer; close: () => Promise<void> }> {
  const mod = confluentModule();
  const reader = new mod.KafkaConsumer(
    {
      ...confluentSettingsOf(options),
      "group.id": `sage-read-${randomUUID()}`,
      "enable.auto.commit": false,
      "enable.partition.eof": true,
      "isolation.level": readCommitted ? "read_committed" : "read_uncommitted",
      "fetch.wait.max.ms": 100,
    },
    { "auto.offset.reset": "earliest" },
  );
  await connect(
    () =>
      new Promise<void>((resolve, reject) =>
        reader.connect({ timeout: 10_000 }, (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve())),
      ),
  );
  const close = () => new Promise<void>((resolve) => reader.disconnect(() => resolve()));
  return { reader, close };
}

/** Consumes with `reader` until `done()` says so or `deadline` passes; each batch of messages goes to `take`. */
async function consumeUntil(reader: RdKafkaConsumer, take: (ms: RdKafkaMessage[]) => void, done: () => boolean, deadline: () => boolean): Promise<void> {
  while (!done()) {
    if (deadline()) return;
    const messages = await new Promise<RdKafkaMessage[]>((resolve, reject) => reader.consume(1_000, (err, ms) => (err ? reject(err) : resolve(ms))));
    take(messages);
  }
}

/** Creates the `@confluentinc/kafka-javascript`-backed client (loads the package now). */
export function createConfluentClient(options: ConfluentClientOptions): KafkaClient {
  const mod = confluentModule();
  const settings = confluentSettingsOf(options);
  const kafka = new mod.KafkaJS.Kafka({ ...settings, kafkaJS: { brokers: options.brokers, ...loggerOf(options.logger, mod) } });
  const connect = connector(options);
  const clientId = options.clientId ?? "sage";

  const withAdmin = async <T>(work: (a: KafkaJS.Admin) => Promise<T>): Promise<T> => {
    const a = kafka.admin();
    await connect(() => a.connect());
    try {
      return await work(a);
    } finally {
      await a.disconnect().catch(() => undefined);
    }
  };

  const readToEnd = async (topic: string, partitions?: readonly number[], from?: ReadonlyMap<number, number>) => {
    const ends = await withAdmin((a) => topicOffsets(a, topic));
    const wanted = (p: number): boolean => !partitions || partitions.includes(p);
    const start = (o: PartitionOffsets): number => Math.max(Number(o.low), from?.get(o.partition) ?? 0);
    const targets = new Map(ends.filter((o) => wanted(o.partition) && Number(o.high) > start(o)).map((o) => [o.partition, Number(o.high)] as const));
    const out: Array<ConsumedMessage & { partition: number }> = [];
    if (targets.size === 0) return out;
    const { reader, close } = await assignedReader(options, connect, true);
    try {
      // An end is known for sure from librdkafka's end-of-partition event: it comes after a
      // transaction marker too, which no message would show.
      reader.on("partition.eof", (eof: { topic: string; partition: number; offset: number }) => {
        const target = targets.get(eof.partition);
        if (eof.topic === topic && target !== undefined && eof.offset >= target) targets.delete(eof.partition);
      });
      reader.assign(ends.filter((o) => targets.has(o.partition)).map((o) => ({ topic, partition: o.partition, offset: start(o) })));
      const until = Date.now() + 120_000;
      await consumeUntil(
        reader,
        (ms) => {
          for (const m of ms) {
            const target = targets.get(m.partition);
            out.push(rdConsumedOf(m));
            if (target !== undefined && m.offset + 1 >= target) targets.delete(m.partition);
          }
        },
        () => targets.size === 0,
        () => Date.now() > until,
      );
      if (targets.size > 0) throw new Error(`reading ${topic} to its end: partitions ${[...targets.keys()].join(", ")} not read to their end within 120 s`);
    } finally {
      await close();
    }
    return out.filter((m) => wanted(m.partition));
  };

  return {
    brokers: options.brokers,
    consumer: (o) => new ConfluentGroupConsumer(kafka, o, connect),
    transactionalProducer: (id) => new ConfluentTransactionalProducer(kafka, id, connect),
    async producer(): Promise<PlainProducer> {
      const p = kafka.producer({ ...PRODUCER_SETTINGS, kafkaJS: { idempotent: true, acks: -1 } });
      await connect(() => p.connect());
      return {
        send: (topic, messages) =>
          produce(
            p,
            messages.map((message) => ({ topic, message })),
          ),
        close: () => p.disconnect(),
      };
    },
    async admin(): Promise<KafkaAdmin> {
      const a = kafka.admin();
      await connect(() => a.connect());
      return new ConfluentAdmin(a, options, clientId, kafka, connect);
    },
    readToEnd,
    async readAll(topic: string, o: ReadAllOptions = {}) {
      const ends = await withAdmin((a) => topicOffsets(a, topic));
      const out: Array<ConsumedMessage & { partition: number }> = [];
      const { reader, close } = await assignedReader(options, connect, o.readCommitted !== false);
      try {
        reader.assign(ends.map((e) => ({ topic, partition: e.partition, offset: Number(e.low) })));
        const idle = o.idleTimeoutMs ?? 10_000;
        let last = Date.now();
        // Caught up once nothing new arrived for a while, as the kafkajs client does: right after a
        // commit returned, its markers may not be written yet, so an end looked up now can be short.
        await consumeUntil(
          reader,
          (ms) => {
            for (const m of ms) out.push(rdConsumedOf(m));
            if (ms.length > 0) last = Date.now();
          },
          () => Date.now() - last >= Math.min(idle, out.length > 0 ? 1_500 : idle),
          () => false,
        );
      } finally {
        await close();
      }
      return out;
    },
  };
}

/** Topic administration and offset lookups over the package's admin client. */
class ConfluentAdmin implements KafkaAdmin {
  constructor(
    private readonly a: KafkaJS.Admin,
    private readonly options: ConfluentClientOptions,
    private readonly clientId: string,
    private readonly kafka: Kafka,
    private readonly connect: Connect,
  ) {}

  async ensureTopic(topic: string, partitions: number, configs: Record<string, string> = {}): Promise<boolean> {
    const codes = confluentModule().KafkaJS.ErrorCodes;
    for (let attempt = 1; ; attempt++) {
      try {
        if ((await this.a.listTopics()).includes(topic)) return false;
        const configEntries = Object.entries(configs).map(([name, value]) => ({ name, value }));
        const created = await this.a.createTopics({
          topics: [{ topic, numPartitions: partitions, replicationFactor: this.options.replicationFactor ?? 1, configEntries }],
        });
        await this.leadersOf(topic, partitions);
        return created;
      } catch (err) {
        if (codeOf(err) === codes.ERR_TOPIC_ALREADY_EXISTS) return false;
        if (attempt >= 8) throw err;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  /** Waits until every partition of a new topic has a leader (kafkajs' `waitForLeaders`). */
  private async leadersOf(topic: string, partitions: number): Promise<void> {
    for (let attempt = 0; attempt < 40; attempt++) {
      try {
        const [meta] = await this.a.fetchTopicMetadata({ topics: [topic] });
        if (meta && meta.partitions.length >= partitions && meta.partitions.every((p) => p.leader >= 0)) return;
      } catch {
        // Not known to the broker answering yet.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async deleteTopics(topics: string[]): Promise<void> {
    await this.a.deleteTopics({ topics });
  }

  async missingTopics(topics: readonly string[]): Promise<string[]> {
    const have = new Set(await this.a.listTopics());
    return topics.filter((t) => !have.has(t));
  }

  partitionOffsets(topic: string): Promise<PartitionOffsets[]> {
    return topicOffsets(this.a, topic);
  }

  async offsetsForTime(topic: string, timestamp: number): Promise<Array<{ partition: number; offset: string }>> {
    const offsets = await this.a.fetchTopicOffsetsByTimestamp(topic, timestamp, { isolationLevel: confluentModule().IsolationLevel.READ_COMMITTED });
    return offsets.map((o) => ({ partition: o.partition, offset: o.offset })).sort((x, y) => x.partition - y.partition);
  }

  async committedOffsets(groupId: string, topic: string, partitions: number[], waitMs?: number): Promise<Map<number, string>> {
    const markers = await this.committedMarkers(groupId, topic, partitions, waitMs);
    return new Map([...markers].map(([p, m]) => [p, m.offset]));
  }

  committedMarkers(groupId: string, topic: string, partitions: number[], waitMs?: number): Promise<Map<number, CommittedMarker>> {
    // The same OffsetFetch with require_stable as for kafkajs, over our own connection: its retries
    // while a transaction commits are the sink's protocol, not the client's.
    const { brokers, security } = this.options;
    return committedMarkers({ brokers, clientId: this.clientId, deadlineMs: waitMs, ...(security ? { security } : {}) }, groupId, topic, partitions);
  }

  async setGroupOffsets(groupId: string, topic: string, offsets: ReadonlyArray<{ partition: number; offset: number }>): Promise<void> {
    const codes = confluentModule().KafkaJS.ErrorCodes;
    const { groups } = await this.a.describeGroups([groupId]);
    const members = groups[0]?.members.length ?? 0;
    if (members > 0) throw new GroupActiveError(groupId, new Error(`group ${groupId} has ${members} members`));
    // A consumer that never joins commits as no member: the broker takes it while the group has none.
    const consumer = this.kafka.consumer({ kafkaJS: { groupId, autoCommit: false } });
    await this.connect(() => consumer.connect());
    try {
      await consumer.commitOffsets(offsets.map((o) => ({ topic, partition: o.partition, offset: String(o.offset) })));
    } catch (err) {
      const code = codeOf(err);
      if (code === codes.ERR_UNKNOWN_MEMBER_ID || code === codes.ERR_ILLEGAL_GENERATION || code === codes.ERR_REBALANCE_IN_PROGRESS) {
        throw new GroupActiveError(groupId, err);
      }
      throw err;
    } finally {
      await consumer.disconnect().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.a.disconnect();
  }
}
