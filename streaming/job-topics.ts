/**
 * The Kafka topics a streaming job owns besides its sources: each keyed operator's repartition
 * topic (none behind a source-partitioned keyBy) and compacted changelog topic, and the job's
 * redrive topic. Created by the shim before it consumes, and by a restore before it seeds state.
 */
import type { KafkaClient } from "../connectors/kafka/client.js";
import { keyedTopicsOf } from "../core/plan/stream.js";
import { redriveTopicOf } from "../core/plan/redrive.js";
import type { PhysicalPlan } from "../core/plan/physical.js";

/** Creates the job's repartition, changelog and redrive topics that do not exist yet. */
export async function ensureJobTopics(kafka: KafkaClient, plan: Pick<PhysicalPlan, "stages" | "nodes" | "pipeline">, jobId: string): Promise<void> {
  const admin = await kafka.admin();
  try {
    for (const t of keyedTopicsOf(plan, jobId)) {
      // Records carry their event time as the Kafka timestamp: time-based retention would delete old event time unread.
      if (t.repartition !== null) await admin.ensureTopic(t.repartition, t.partitions, { "retention.ms": "-1" });
      await admin.ensureTopic(t.changelog, t.partitions, { "cleanup.policy": "compact" });
    }
    // One partition; no time retention: a re-driven letter waits for the job however long it is down.
    await admin.ensureTopic(redriveTopicOf(plan.pipeline, jobId), 1, { "retention.ms": "-1" });
  } finally {
    await admin.close();
  }
}
