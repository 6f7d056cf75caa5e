/**
 * Exactly-once writes of a streaming stage to Kafka. Each (job, stage, shard) has a stable
 * transactional id; a batch's outputs, its dead letters and the shard's progress marker (the next
 * source offset, committed as the offset of a consumer group named after the transactional id) go
 * in one transaction. A retried batch first fences any older producer with the same id, then reads
 * the marker and skips the batch if an earlier attempt already committed it.
 */
import type { Logger } from "pino";
import { SinkError } from "../../core/errors.js";
import type { KafkaAdmin, KafkaClient, OutgoingMessage, TransactionalProducer } from "./client.js";

/** The source position a transaction covers. */
export interface SourcePosition {
  topic: string;
  partition: number;
  /** Offset after the batch's last record. */
  nextOffset: number;
}

/** Transactional id (and marker group) of one shard of one stage of a job. */
export function transactionalIdOf(pipeline: string, jobId: string, stage: string, shard: string): string {
  return `sage.${pipeline}.${jobId}.${stage}.${shard}`;
}

/** Producers and an admin connection shared by the stage activities of one worker process. */
export class KafkaSinkHost {
  private readonly producers = new Map<string, TransactionalProducer>();
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

  /** Writes `messages` and the marker in one transaction, unless the marker says the batch is already in. */
  async commitBatch(
    transactionalId: string,
    messages: Array<{ topic: string; message: OutgoingMessage }>,
    source: SourcePosition,
  ): Promise<"committed" | "skipped"> {
    const previous = this.locks.get(transactionalId) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.commitLocked(transactionalId, messages, source));
    this.locks.set(transactionalId, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(transactionalId) === run) this.locks.delete(transactionalId);
    }
  }

  private async commitLocked(
    transactionalId: string,
    messages: Array<{ topic: string; message: OutgoingMessage }>,
    source: SourcePosition,
  ): Promise<"committed" | "skipped"> {
    let producer = this.producers.get(transactionalId);
    if (!producer) {
      producer = this.client.transactionalProducer(transactionalId);
      this.producers.set(transactionalId, producer);
    }
    try {
      // Fence first: after init no older attempt can still commit, so the marker read next is final.
      await producer.init();
      const admin = await this.adminConnection();
      const marker = (await admin.committedOffsets(transactionalId, source.topic)).get(source.partition);
      if (marker !== undefined && Number(marker) >= source.nextOffset) {
        this.logger.info({ transactionalId, marker, batchEnd: source.nextOffset }, "batch already committed by an earlier attempt: skipped");
        return "skipped";
      }
      await producer.commitTransaction(messages, {
        group: transactionalId,
        topic: source.topic,
        partition: source.partition,
        nextOffset: String(source.nextOffset),
      });
      return "committed";
    } catch (err) {
      this.producers.delete(transactionalId);
      await producer.close();
      throw new SinkError(`Kafka transaction ${transactionalId} failed: ${(err as Error).message}`, { retriable: true, cause: err });
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
