/**
 * Consumer lag per source partition, for the metrics: every few seconds the shim asks the broker for
 * each topic's end offsets and subtracts the job's processed offsets, as the partition workflows
 * last reported them (`ProgressWatch`). A partition the job has not processed a batch of yet has no
 * position, and no lag figure until it has.
 */
import type { Logger } from "pino";
import { topicPartition, type StreamProgress } from "../../core/plan/stream.js";
import type { KafkaAdmin, KafkaClient } from "../../connectors/kafka/client.js";
import { shimMetrics, type JobRef } from "../../monitoring/shim-metrics.js";

/** How often end offsets are fetched: lag alerts look at minutes, and each round is a broker request per topic. */
const LAG_EVERY_MS = 5_000;

/** Watches the consumer lag of a job's topics. */
export class LagWatch {
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private admin: Promise<KafkaAdmin> | null = null;

  constructor(
    private readonly job: JobRef,
    private readonly kafka: KafkaClient,
    /** The topics the shim reads (sources and repartition topics). */
    private readonly topics: () => string[],
    /** The partition workflows' last progress answers (null: none yet). */
    private readonly progress: () => Array<StreamProgress | null>,
    private readonly logger: Logger,
  ) {}

  /** Starts measuring every `LAG_EVERY_MS`. */
  start(): void {
    this.timer = setInterval(() => {
      this.round ??= this.measure()
        .catch((err: unknown) => {
          this.logger.debug({ err: (err as Error).message }, "consumer lag not measured this round");
          // A broken connection is opened afresh next round.
          void this.closeAdmin();
        })
        .finally(() => (this.round = null));
    }, LAG_EVERY_MS);
  }

  /** Stops measuring; returns once the last round is over and the admin connection closed. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.round;
    await this.closeAdmin();
  }

  private async closeAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    await (await admin?.catch(() => null))?.close().catch(() => undefined);
  }

  /** One round: end offsets of every topic minus the processed offsets. */
  private async measure(): Promise<void> {
    const processed = new Map<string, number>();
    for (const p of this.progress()) for (const [tp, next] of Object.entries(p?.processed ?? {})) processed.set(tp, next);
    if (processed.size === 0) return;
    const admin = await (this.admin ??= this.kafka.admin());
    for (const topic of this.topics()) {
      for (const o of await admin.partitionOffsets(topic)) {
        const at = processed.get(topicPartition(topic, o.partition));
        if (at !== undefined) shimMetrics.lag(this.job, topic, o.partition, Number(o.high) - at);
      }
    }
  }
}
