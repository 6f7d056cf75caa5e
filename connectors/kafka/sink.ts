/**
 * Exactly-once writes of a streaming stage to Kafka. Each (job, stage, shard) has a stable
 * transactional id; a unit's outputs, its dead letters and the shard's progress marker (the next
 * source offset per partition, committed as the offsets of a consumer group named after the
 * transactional id) go in one transaction. An attempt first fences any older producer with the same
 * id, then reads the marker (with require_stable, see stable-offsets.ts) and skips what an earlier
 * attempt already committed. A marker that stays unstable belongs to a hanging transaction, which
 * the attempt aborts before it reads again.
 */
import type { Logger } from "pino";
import { SinkError } from "../../core/errors.js";
import { UnstableOffsetsError, type KafkaAdmin, type KafkaClient, type OutgoingMessage, type TransactionalProducer } from "./client.js";

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
  /** Writes `messages` and advances the markers to `positions` in one transaction. */
  commit(messages: Array<{ topic: string; message: OutgoingMessage }>, positions: SourcePosition[]): Promise<void>;
}

/** Transactional id (and marker group) of one shard of one stage of a job. */
export function transactionalIdOf(pipeline: string, jobId: string, stage: string, shard: string): string {
  return `sage.${pipeline}.${jobId}.${stage}.${shard}`;
}

/** Producers and an admin connection shared by the stage activities of one worker process. */
export class KafkaSinkHost {
  private readonly producers = new Map<string, TransactionalProducer>();
  /**
   * Markers this process committed with a producer it still holds, by transactional id and source
   * partition. Valid while that producer is: another writer with the same id must fence it first, and
   * then our next commit fails, drops the producer and this cache, and the marker is read again.
   */
  private readonly knownMarkers = new Map<string, Map<string, number>>();
  /** One transaction per id at a time, even when two attempts of a batch overlap in this process. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private admin: Promise<KafkaAdmin> | null = null;

  constructor(
    readonly client: KafkaClient,
    private readonly logger: Logger,
  ) {}

  private adminConnection(): Promise<KafkaAdmin> {
    this.admin ??= this.client.admin().catch((err: unknown) => {
      this.admin = null;
      throw err;
    });
    return this.admin;
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
    const known = this.knownMarkers.get(transactionalId) ?? new Map<string, number>();
    this.knownMarkers.set(transactionalId, known);
    const fail = async (err: unknown): Promise<never> => {
      this.logger.warn({ transactionalId, err: (err as Error).message }, "kafka transaction failed; the producer is dropped and the markers are read again");
      const held = this.producers.get(transactionalId);
      this.producers.delete(transactionalId);
      this.knownMarkers.delete(transactionalId);
      await Promise.allSettled([producer.close(), held?.close()]);
      throw new SinkError(`Kafka transaction ${transactionalId} failed: ${(err as Error).message}`, { retriable: true, cause: err });
    };
    try {
      await producer.init();
    } catch (err) {
      return fail(err);
    }
    const reads = new Map<string, Promise<number>>();
    let aborting: Promise<void> | null = null;
    const abortHanging = (topic: string, partition: number): Promise<void> =>
      (aborting ??= this.abortHanging(producer, transactionalId, outputTopics, topic, partition).then((p) => {
        producer = p;
      }));
    const session: SinkSession = {
      committedUpTo: (topic, partition) => {
        const tp = `${topic}:${partition}`;
        const marker = known.get(tp);
        if (marker !== undefined) return Promise.resolve(marker);
        // The slices of a unit ask in parallel: one read per partition.
        let read = reads.get(tp);
        if (!read) {
          read = this.readMarker(transactionalId, topic, partition, abortHanging).then((m) => {
            known.set(tp, m);
            return m;
          }, fail);
          reads.set(tp, read);
        }
        return read;
      },
      commit: async (messages, positions) => {
        try {
          const marker = {
            group: transactionalId,
            positions: positions.map((p) => ({ topic: p.topic, partition: p.partition, nextOffset: String(p.nextOffset) })),
          };
          await producer.commitTransaction(messages, marker);
        } catch (err) {
          return fail(err);
        }
        for (const p of positions) known.set(`${p.topic}:${p.partition}`, p.nextOffset);
        this.logger.debug({ transactionalId, positions }, "progress marker committed");
      },
    };
    return work(session);
  }

  private async readMarker(
    transactionalId: string,
    topic: string,
    partition: number,
    abortHanging: (topic: string, partition: number) => Promise<void>,
  ): Promise<number> {
    const admin = await this.adminConnection();
    let stored: string | undefined;
    try {
      stored = (await admin.committedOffsets(transactionalId, topic, [partition], HANGING_AFTER_MS)).get(partition);
    } catch (err) {
      if (!(err instanceof UnstableOffsetsError)) throw err;
      await abortHanging(topic, partition);
      stored = (await admin.committedOffsets(transactionalId, topic, [partition])).get(partition);
    }
    const marker = stored === undefined ? -1 : Number(stored);
    this.logger.debug({ transactionalId, topic, partition, marker }, "progress marker read");
    return marker;
  }

  /** A producer for `transactionalId`, held for the next sessions. */
  private newProducer(transactionalId: string): TransactionalProducer {
    const producer = this.client.transactionalProducer(transactionalId);
    this.producers.set(transactionalId, producer);
    return producer;
  }

  /**
   * Aborts what a hanging transaction of this id left open, on every partition of the outputs and on
   * the marker; returns the producer to go on with. The partitions may have seen a higher producer
   * epoch than the coordinator now hands out (it lost the transaction): they refuse ours as old, so
   * fresh producers bump the epoch until it is past theirs.
   */
  private async abortHanging(
    producer: TransactionalProducer,
    transactionalId: string,
    outputTopics: string[],
    topic: string,
    partition: number,
  ): Promise<TransactionalProducer> {
    const admin = await this.adminConnection();
    const partitions = (
      await Promise.all(outputTopics.map(async (t) => (await admin.partitionOffsets(t)).map((p) => ({ topic: t, partition: p.partition }))))
    ).flat();
    const marker = { group: transactionalId, positions: [{ topic, partition, nextOffset: "0" }] };
    for (let bumps = 0; ; bumps++) {
      if (bumps % 20 === 0) {
        this.logger.warn(
          { transactionalId, topic, partition, outputPartitions: partitions.length, bumps },
          "progress marker stays unstable: aborting the hanging transaction of this id on its outputs and marker",
        );
      }
      try {
        await producer.abortHanging(partitions, marker);
        if (bumps > 0) this.logger.warn({ transactionalId, bumps }, "hanging transaction aborted");
        return producer;
      } catch (err) {
        if (bumps >= MAX_EPOCH_BUMPS || !/old epoch|INVALID_PRODUCER_EPOCH|PRODUCER_FENCED/.test((err as Error).message)) throw err;
        await producer.close();
        producer = this.newProducer(transactionalId);
        await producer.init();
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
