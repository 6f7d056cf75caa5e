/**
 * The Kafka topics a streaming job owns besides its sources: each keyed operator's repartition
 * topic (none behind a source-partitioned keyBy) and compacted changelog topic, and the job's
 * redrive topic. Created by the shim before it consumes, and by a restore before it seeds state.
 * The topics it reads and writes are the user's: they are checked, never created.
 */
import { MissingTopicError, type KafkaClient } from "../connectors/kafka/client.js";
import { kafkaSinksOf, keyedTopicsOf } from "../core/plan/stream.js";
import { redriveTopicOf } from "../core/plan/redrive.js";
import { LINEAGE_TOPIC_CONFIGS } from "../core/plan/lineage.js";
import type { PhysicalPlan } from "../core/plan/physical.js";

/**
 * Refuses a job whose source or Kafka-sink topic does not exist, naming the first such topic and
 * its operator; with `create`, creates them instead with that many partitions (returns their names).
 */
export async function checkUserTopics(kafka: KafkaClient, plan: Pick<PhysicalPlan, "nodes" | "pipeline">, create?: { partitions: number }): Promise<string[]> {
  const users = new Map<string, string>();
  for (const n of plan.nodes)
    if (n.source?.kind === "kafka") for (const t of n.source.topics) users.set(t, `source "${n.name}" of pipeline "${plan.pipeline}"`);
  for (const [t, name] of kafkaSinksOf(plan)) if (!users.has(t)) users.set(t, `sink "${name}" of pipeline "${plan.pipeline}"`);
  if (users.size === 0) return [];
  const admin = await kafka.admin();
  try {
    const missing = await admin.missingTopics([...users.keys()]);
    if (!create && missing[0] !== undefined) throw new MissingTopicError(missing[0], users.get(missing[0])!);
    for (const t of missing) await admin.ensureTopic(t, create!.partitions);
    return missing;
  } finally {
    await admin.close();
  }
}

/** Creates the job's repartition, changelog, redrive and (`lineageTopic`) lineage topics that do not exist yet. */
export async function ensureJobTopics(
  kafka: KafkaClient,
  plan: Pick<PhysicalPlan, "stages" | "nodes" | "pipeline">,
  jobId: string,
  lineageTopic?: string,
): Promise<void> {
  const admin = await kafka.admin();
  try {
    for (const t of keyedTopicsOf(plan, jobId)) {
      // Records carry their event time as the Kafka timestamp: time-based retention would delete old event time unread.
      if (t.repartition !== null) await admin.ensureTopic(t.repartition, t.partitions, { "retention.ms": "-1" });
      await admin.ensureTopic(t.changelog, t.partitions, { "cleanup.policy": "compact" });
    }
    // One partition; no time retention: a re-driven letter waits for the job however long it is down.
    await admin.ensureTopic(redriveTopicOf(plan.pipeline, jobId), 1, { "retention.ms": "-1" });
    // One line per batch, kept as long as the outputs it explains may be (the user's topics' retention is not ours to guess).
    if (lineageTopic) await admin.ensureTopic(lineageTopic, 1, { ...LINEAGE_TOPIC_CONFIGS });
  } finally {
    await admin.close();
  }
}
