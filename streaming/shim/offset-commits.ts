/**
 * Consumer offset commits: the next offsets of delivered batches (their signal returned, so the
 * workflow holds them durably), committed every `COMMIT_EVERY_MS`. They are only a hint for restarts:
 * the workflow's offset table is the truth, and it drops what it has seen.
 */
import type { Logger } from "pino";
import { topicPartition } from "../../core/plan/stream.js";
import type { GroupConsumer } from "../../connectors/kafka/client.js";
import type { Outgoing } from "./batching.js";

/** How often delivered offsets are committed: a hint need not cost a broker write per batch. */
const COMMIT_EVERY_MS = 1_000;

/** The next offset to read of one partition. */
interface NextOffset {
  topic: string;
  partition: number;
  nextOffset: string;
}

/** Commits the offsets of delivered batches on a timer. */
export class OffsetCommits {
  /** Next offsets of delivered batches not yet committed, by topic-partition. */
  private readonly delivered = new Map<string, NextOffset>();
  private timer: NodeJS.Timeout | null = null;
  private committing: Promise<void> | null = null;

  constructor(
    /** The consumer of the moment (a crashed one is replaced). */
    private readonly consumer: () => GroupConsumer | null,
    private readonly logger: Logger,
  ) {}

  /** Starts committing every `COMMIT_EVERY_MS`. */
  start(): void {
    this.timer = setInterval(() => void this.commit(), COMMIT_EVERY_MS);
  }

  /** Batches whose signal returned: their offsets go in the next commit. */
  add(batches: Outgoing[]): void {
    for (const { meta } of batches) {
      this.delivered.set(topicPartition(meta.topic, meta.partition), { topic: meta.topic, partition: meta.partition, nextOffset: String(meta.to + 1) });
    }
  }

  /** Stops the timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Waits for a commit under way, then commits what was delivered since. */
  async flush(): Promise<void> {
    await this.committing;
    await this.commit();
  }

  /** Commits the offsets of delivered batches; one commit at a time. */
  private commit(): Promise<void> {
    return (this.committing ??= this.commitDelivered().finally(() => (this.committing = null)));
  }

  private async commitDelivered(): Promise<void> {
    const consumer = this.consumer();
    if (!consumer || this.delivered.size === 0) return;
    const offsets = [...this.delivered.values()];
    this.delivered.clear();
    try {
      await consumer.commit(offsets);
    } catch (err) {
      // Usually a rebalance: the next commit carries newer offsets; a partition now elsewhere only gets an older hint.
      this.logger.info({ err: (err as Error).message, partitions: offsets.length }, "offset commit refused; the next one carries them");
      for (const o of offsets) {
        const key = topicPartition(o.topic, o.partition);
        if (!this.delivered.has(key)) this.delivered.set(key, o);
      }
    }
  }
}
