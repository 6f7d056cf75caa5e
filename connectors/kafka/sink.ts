/**
 * The exactly-once protocol of a streaming stage's Kafka writes, whatever the client. Each (job,
 * stage, shard) has a stable transactional id; a unit's outputs, its dead letters and the shard's
 * progress marker (the next source offset per partition, committed as the offsets of a consumer
 * group named after the transactional id) go in one transaction. An attempt (1) fences any older
 * producer with the same id, (2) reads the marker (with require_stable, see stable-offsets.ts),
 * aborting first a hanging transaction that keeps it unstable, (3) skips what an earlier attempt
 * already committed and (4) writes the rest and advances the marker in one commit. The client
 * (`client.ts`) only makes the Kafka calls.
 */
import type { Logger } from "pino";
import { SinkError } from "../../core/errors.js";
import {
  TransactionError,
  UnstableOffsetsError,
  type CommittedMarker,
  type KafkaAdmin,
  type KafkaClient,
  type OutgoingMessage,
  type ProducerTransaction,
  type TransactionalProducer,
} from "./client.js";
import { topicPartition } from "../../core/plan/stream.js";

/**
 * How long the marker may stay unstable before the open transaction counts as hanging. The session
 * holds the id's newest producer epoch, so the coordinator has finished every transaction it knows
 * of; a marker unstable past this is one it lost track of (seen after a broker kill -9).
 */
const HANGING_AFTER_MS = 5_000;
/** Fresh producers tried when the partitions refuse the epoch as old (each bumps it by one). */
const MAX_EPOCH_BUMPS = 200;

/** A source partition position: the offset after the last record a transaction covers. */
export interface SourcePosition {
  topic: string;
  partition: number;
  nextOffset: number;
}

/** One stage activity's hold on its transactional id: read the markers, then commit once. */
export interface SinkSession {
  /** Offset after the last source record already committed for this partition under this id (-1: none). */
  committedUpTo(topic: string, partition: number): Promise<number>;
  /** Parts of the unit sent before `commit`, while it still runs (absent: everything goes with `commit`). */
  ahead?: SendAhead;
  /** Writes `messages` and advances the markers to `positions` in one transaction, with `note` as their metadata. */
  commit(messages: Array<{ topic: string; message: OutgoingMessage }>, positions: SourcePosition[], note?: string): Promise<void>;
  /**
   * The note committed with this partition's marker, once `committedUpTo` has read it: what the
   * unit that last committed it wrote there (null: none, or the confluent client, which drops it).
   */
  noteOf?(topic: string, partition: number): string | null;
}

/** How a session sends a unit's messages ahead of its commit (`kafka.send-ahead`). */
export interface SendAhead {
  /** Messages per part. */
  readonly part: number;
  /**
   * Sends `messages` in the session's transaction now: parts go out one after another, in order,
   * and `commit` writes its messages after them. A part that fails fails the commit; when the work
   * ends without committing, what went ahead is aborted. Settles once the part went out (it never
   * rejects: `commit` reports a failure).
   */
  send(messages: Array<{ topic: string; message: OutgoingMessage }>): Promise<void>;
}

/** A source slice a unit read: a partition and the offsets `[from, to]` it covers. */
export interface UnitSlice {
  topic: string;
  partition: number;
  from: number;
  to: number;
}

/** A message a unit writes, with the index of the slice whose record led to it (-1: none known). */
export interface UnitMessage {
  topic: string;
  message: OutgoingMessage;
  slice: number;
}

/**
 * Skip or write: what a unit writes, against the markers read before its chain runs. An output
 * whose slice an earlier attempt committed is left out as it is written (`bySlice`, a source
 * stage, decides per slice; after a stage boundary, where outputs no longer map to slices, the unit
 * is written whole or not at all); the rest goes ahead in parts while the chain runs (where the
 * session can) and is committed with the markers in one transaction.
 */
export class UnitWrites {
  private readonly waiting: Array<{ topic: string; message: OutgoingMessage }> = [];
  private sent = 0;
  private skipped = 0;
  /** Parts sent ahead and not yet out. */
  private inFlight = 0;
  /** The slices this attempt still has to commit (the rest an earlier one did). */
  private readonly open: UnitSlice[];

  private constructor(
    private readonly session: SinkSession,
    private readonly slices: readonly UnitSlice[],
    private readonly done: readonly boolean[],
    bySlice: boolean,
    private readonly logger: Logger,
  ) {
    this.open = slices.filter((_, i) => !this.skips(bySlice ? i : -1));
  }

  /** Reads the markers of the unit's `slices` (the session caches them) to know what to skip. */
  static async open(session: SinkSession, slices: readonly UnitSlice[], bySlice: boolean, logger: Logger): Promise<UnitWrites> {
    const upTo = await Promise.all(slices.map((s) => session.committedUpTo(s.topic, s.partition)));
    logger.debug({ slices: slices.map((s, i) => ({ p: s.partition, from: s.from, to: s.to, upTo: upTo[i] })) }, "stream unit against its markers");
    return new UnitWrites(
      session,
      slices,
      slices.map((s, i) => upTo[i]! >= s.to + 1),
      bySlice,
      logger,
    );
  }

  /** Whether an output of `slice` (-1: of the whole unit) was committed by an earlier attempt. A unit without slices skips nothing. */
  private skips(slice: number): boolean {
    if (this.slices.length === 0) return false;
    return slice >= 0 ? this.done[slice]! : this.done.every(Boolean);
  }

  /** Takes one output; a part goes ahead once the session's part size wait (`SendAhead`). */
  add(m: UnitMessage): void {
    if (this.skips(m.slice)) {
      this.skipped++;
      return;
    }
    this.waiting.push({ topic: m.topic, message: m.message });
    const ahead = this.session.ahead;
    if (!ahead || this.waiting.length < ahead.part) return;
    const part = this.waiting.splice(0);
    this.sent += part.length;
    this.inFlight++;
    void ahead.send(part).then(() => this.inFlight--);
  }

  /** Whether a part sent ahead is still going out: its send progresses only when the chain yields. */
  sending(): boolean {
    return this.inFlight > 0;
  }

  /**
   * Commits what is left with the markers of the open slices and `extra` (a keyed stage's state
   * sequence), `note` their metadata. "skipped" when every slice was committed before (nothing of
   * this attempt counts), "empty" when nothing was written (the markers stay).
   */
  async commit(extra: SourcePosition[] = [], note?: string): Promise<UnitCommit> {
    const written = this.sent + this.waiting.length;
    if (this.slices.length === 0) {
      // A unit with no source records (processing-time timers): its effects are its own dedupe, through the state it changes.
      if (written === 0) return "empty";
      await this.session.commit(this.waiting, extra, note);
      return "committed";
    }
    if (this.skipped > 0) this.logger.info({ skipped: this.skipped }, "records an earlier attempt already committed: not written again");
    if (this.open.length === 0) return "skipped";
    if (written === 0) return "empty";
    const positions = new Map<string, SourcePosition>();
    for (const s of this.open) {
      const key = topicPartition(s.topic, s.partition);
      const next = Math.max(positions.get(key)?.nextOffset ?? 0, s.to + 1);
      positions.set(key, { topic: s.topic, partition: s.partition, nextOffset: next });
    }
    const started = Date.now();
    await this.session.commit(this.waiting, [...positions.values(), ...extra], note);
    this.logger.debug({ messages: written, ahead: this.sent, slices: this.open.length, ms: Date.now() - started }, "kafka transaction");
    return "committed";
  }
}

/** How a unit's commit ended: written with its markers, nothing to write (markers unchanged), or skipped (an earlier attempt committed it). */
export type UnitCommit = "committed" | "empty" | "skipped";

/** Transactional id (and marker group) of one shard of one stage of a job. */
export function transactionalIdOf(pipeline: string, jobId: string, stage: string, shard: string): string {
  return `sage.${pipeline}.${jobId}.${stage}.${shard}`;
}

/** Producers and an admin connection shared by the stage activities of one worker process. */
export class KafkaSinkHost {
  private readonly producers = new Map<string, TransactionalProducer>();
  /**
   * Markers this process committed with a producer it still holds (or read for it), with the note
   * committed with each, by transactional id and source partition. Valid while that producer is:
   * another writer with the same id must fence it first, and then our next commit fails, drops the
   * producer and this cache, and the marker is read again.
   */
  private readonly knownMarkers = new Map<string, Map<string, { marker: number; note: string | null }>>();
  /** One transaction per id at a time, even when two attempts of a batch overlap in this process. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private admin: Promise<KafkaAdmin> | null = null;
  /** Topics this process made sure of (`ensureTopic`). */
  private readonly ensured = new Map<string, Promise<void>>();

  constructor(
    readonly client: KafkaClient,
    private readonly logger: Logger,
    /** Messages per part a unit sends ahead of its commit (`kafka.send-ahead`; 0: none). */
    private readonly sendAhead = 5_000,
  ) {}

  private adminConnection(): Promise<KafkaAdmin> {
    this.admin ??= this.client.admin().catch((err: unknown) => {
      this.admin = null;
      throw err;
    });
    return this.admin;
  }

  /** Creates `topic` unless it exists, once per process (a job's own topic that no shim may have created). */
  ensureTopic(topic: string, partitions: number, configs: Readonly<Record<string, string>> = {}): Promise<void> {
    let done = this.ensured.get(topic);
    if (!done) {
      done = this.adminConnection()
        .then((admin) => admin.ensureTopic(topic, partitions, { ...configs }))
        .then(
          () => undefined,
          (err: unknown) => {
            this.ensured.delete(topic);
            throw err;
          },
        );
      this.ensured.set(topic, done);
    }
    return done;
  }

  /**
   * Runs `work` holding the transactional id: one session at a time per id in this process, even
   * when two attempts of a batch overlap. The producer is initialised first (fencing any older
   * producer with the id, whose open transaction the coordinator then finishes), and the markers are
   * read only once stable. `outputTopics` are the partitions a hanging transaction may hold open.
   */
  async withSession<T>(transactionalId: string, outputTopics: string[], work: (session: SinkSession) => Promise<T>): Promise<T> {
    const previous = this.locks.get(transactionalId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.session(transactionalId, outputTopics, work));
    this.locks.set(transactionalId, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(transactionalId) === run) this.locks.delete(transactionalId);
    }
  }

  private async session<T>(transactionalId: string, outputTopics: string[], work: (session: SinkSession) => Promise<T>): Promise<T> {
    let producer: TransactionalProducer = this.producers.get(transactionalId) ?? this.newProducer(transactionalId);
    // Dropped with the producer when a transaction fails; a fresh producer starts with none known.
    const known = this.knownMarkers.get(transactionalId) ?? new Map<string, { marker: number; note: string | null }>();
    this.knownMarkers.set(transactionalId, known);
    const fail = async (err: unknown): Promise<never> => {
      // `fenced`: a newer producer with this id (another worker that took the unit over) refused our late write.
      const fenced = err instanceof TransactionError && err.fenced;
      this.logger.warn(
        { transactionalId, fenced, err: (err as Error).message },
        "kafka transaction failed; the producer is dropped and the markers are read again",
      );
      const held = this.producers.get(transactionalId);
      this.producers.delete(transactionalId);
      this.knownMarkers.delete(transactionalId);
      await Promise.allSettled([producer.close(), held?.close()]);
      throw new SinkError(`Kafka transaction ${transactionalId} failed: ${(err as Error).message}`, { retriable: true, cause: err });
    };
    // (1) Fence: a new producer's first transaction claims the id before any marker is read.
    let txn: ProducerTransaction | null;
    try {
      txn = await producer.begin();
    } catch (err) {
      return fail(err);
    }
    /** The transaction the unit's messages go to, once the first part (or the commit) began it. */
    let current: ProducerTransaction | null = null;
    const transaction = async (): Promise<ProducerTransaction> => {
      current ??= txn ?? (await producer.begin());
      txn = null;
      return current;
    };
    /** Parts sent ahead of the commit, one after another (null: none). */
    let ahead: Promise<void> | null = null;
    let committing = false;
    const reads = new Map<string, Promise<number>>();
    let aborting: Promise<void> | null = null;
    const abortHanging = (topic: string, partition: number): Promise<void> =>
      (aborting ??= this.abortHanging(producer, txn!, transactionalId, outputTopics, topic, partition).then((p) => {
        producer = p;
        txn = null;
      }));
    const session: SinkSession = {
      // (2) Read the marker, once per partition: the slices of a unit ask in parallel.
      committedUpTo: (topic, partition) => {
        const tp = topicPartition(topic, partition);
        const cached = known.get(tp);
        if (cached !== undefined) return Promise.resolve(cached.marker);
        let read = reads.get(tp);
        if (!read) {
          read = this.readMarker(transactionalId, topic, partition, abortHanging).then((m) => {
            known.set(tp, m);
            return m.marker;
          }, fail);
          reads.set(tp, read);
        }
        return read;
      },
      noteOf: (topic, partition) => known.get(topicPartition(topic, partition))?.note ?? null,
      ...(this.sendAhead > 0
        ? {
            ahead: {
              part: this.sendAhead,
              send: (messages) => {
                ahead = (ahead ?? Promise.resolve()).then(async () => (await transaction()).send(messages));
                // Observed by `commit`, or by the abort when the work ends without one.
                return ahead.catch(() => undefined);
              },
            },
          }
        : {}),
      // (4) Write and advance the marker in one commit.
      commit: async (messages, positions, note) => {
        committing = true;
        // Each step's ms, for the debug log: where a batch's transaction spends its time.
        const ms: number[] = [];
        let at = Date.now();
        const lap = (): void => {
          const now = Date.now();
          ms.push(now - at);
          at = now;
        };
        try {
          // The parts sent ahead first: `ahead`'s wait is what the unit's end waited for them.
          await ahead;
          lap();
          const open = await transaction();
          await open.send(messages);
          lap();
          await open.sendOffsets({
            group: transactionalId,
            positions: positions.map((p) => ({ topic: p.topic, partition: p.partition, nextOffset: String(p.nextOffset) })),
            ...(note !== undefined ? { note } : {}),
          });
          lap();
          await open.commit();
          lap();
        } catch (err) {
          await current?.abort().catch(() => undefined);
          return fail(err);
        } finally {
          current = null;
        }
        for (const p of positions) known.set(topicPartition(p.topic, p.partition), { marker: p.nextOffset, note: note ?? null });
        const [aheadMs, sendMs, offsetsMs, commitMs] = ms;
        this.logger.debug({ transactionalId, positions, aheadMs, sendMs, offsetsMs, commitMs }, "progress marker committed");
      },
    };
    try {
      return await work(session);
    } finally {
      // Parts went ahead but the unit never committed (its chain failed): abort them, or drop the producer.
      if (ahead && !committing) await this.abortAhead(ahead, () => current, transactionalId, fail);
    }
  }

  /** Ends a transaction that got parts sent ahead and no commit; a failed part or abort drops the producer (`fail`). */
  private async abortAhead(
    ahead: Promise<void>,
    open: () => ProducerTransaction | null,
    transactionalId: string,
    fail: (err: unknown) => Promise<never>,
  ): Promise<void> {
    const failed = await ahead.then(
      () => null,
      (err: unknown) => err ?? new Error("a part sent ahead failed"),
    );
    try {
      await open()?.abort();
      this.logger.info({ transactionalId }, "unit ended without its commit after parts went ahead: its transaction is aborted");
    } catch (err) {
      await fail(err).catch(() => undefined);
      return;
    }
    // Like a failed commit: a part that failed leaves the producer in doubt.
    if (failed) await fail(failed).catch(() => undefined);
  }

  private async readMarker(
    transactionalId: string,
    topic: string,
    partition: number,
    abortHanging: (topic: string, partition: number) => Promise<void>,
  ): Promise<{ marker: number; note: string | null }> {
    const admin = await this.adminConnection();
    let stored: CommittedMarker | undefined;
    try {
      stored = (await admin.committedMarkers(transactionalId, topic, [partition], HANGING_AFTER_MS)).get(partition);
    } catch (err) {
      if (!(err instanceof UnstableOffsetsError)) throw err;
      await abortHanging(topic, partition);
      stored = (await admin.committedMarkers(transactionalId, topic, [partition])).get(partition);
    }
    const marker = stored === undefined ? -1 : Number(stored.offset);
    this.logger.debug({ transactionalId, topic, partition, marker }, "progress marker read");
    return { marker, note: stored?.metadata ?? null };
  }

  /** A producer for `transactionalId`, held for the next sessions. */
  private newProducer(transactionalId: string): TransactionalProducer {
    const producer = this.client.transactionalProducer(transactionalId);
    this.producers.set(transactionalId, producer);
    return producer;
  }

  /**
   * Aborts what a hanging transaction of this id left open, on every partition of the outputs and on
   * the marker: a transaction that touches each (one empty record per partition, the marker's
   * offsets) and is aborted ends this producer id's open records there too. Returns the producer to
   * go on with. The partitions may have seen a higher producer epoch than the coordinator now hands
   * out (it lost the transaction): they refuse ours as old, so fresh producers bump the epoch until
   * it is past theirs.
   */
  private async abortHanging(
    producer: TransactionalProducer,
    txn: ProducerTransaction,
    transactionalId: string,
    outputTopics: string[],
    topic: string,
    partition: number,
  ): Promise<TransactionalProducer> {
    const admin = await this.adminConnection();
    const partitions = (
      await Promise.all(outputTopics.map(async (t) => (await admin.partitionOffsets(t)).map((p) => ({ topic: t, partition: p.partition }))))
    ).flat();
    const touches = partitions.map((p) => ({
      topic: p.topic,
      message: { partition: p.partition, key: null, value: null, headers: { "sage-abort": "hanging transaction" } },
    }));
    const marker = { group: transactionalId, positions: [{ topic, partition, nextOffset: "0" }] };
    for (let bumps = 0; ; bumps++) {
      if (bumps % 20 === 0) {
        this.logger.warn(
          { transactionalId, topic, partition, outputPartitions: partitions.length, bumps },
          "progress marker stays unstable: aborting the hanging transaction of this id on its outputs and marker",
        );
      }
      try {
        await touchAndAbort(txn, touches, marker);
        if (bumps > 0) this.logger.warn({ transactionalId, bumps }, "hanging transaction aborted");
        return producer;
      } catch (err) {
        if (bumps >= MAX_EPOCH_BUMPS || !(err instanceof TransactionError && err.fenced)) throw err;
        await producer.close();
        producer = this.newProducer(transactionalId);
        txn = await producer.begin();
      }
    }
  }

  async close(): Promise<void> {
    const producers = [...this.producers.values()];
    this.producers.clear();
    await Promise.allSettled(producers.map((p) => p.close()));
    const admin = this.admin;
    this.admin = null;
    if (admin) await admin.then((a) => a.close()).catch(() => undefined);
  }
}

/** Sends `touches` and the marker's offsets in `txn`, then aborts it (it is aborted on a failed send too). */
async function touchAndAbort(
  txn: ProducerTransaction,
  touches: Array<{ topic: string; message: OutgoingMessage }>,
  marker: { group: string; positions: Array<{ topic: string; partition: number; nextOffset: string }> },
): Promise<void> {
  try {
    await txn.send(touches);
    await txn.sendOffsets(marker);
  } catch (err) {
    await txn.abort().catch(() => undefined);
    throw err;
  }
  await txn.abort();
}
