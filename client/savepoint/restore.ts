/**
 * Starts a new streaming job from a savepoint: with changed operator code, another parallelism
 * (state moves by key group), added operators (they start empty), and removed operators only when
 * allowed. Everything is checked before anything is written: the manifest, every data file against
 * its checksum, the pipeline, the key groups, each operator's kind, and that the job is new. Then
 * each keyed operator's entries are written to the new job's changelog partition that will serve
 * them, in one transaction per partition under the id its stage will use, which also sets the
 * partition's state-sequence marker to 0 (so the first unit rebuilds from it); the source group's
 * offsets are set to the savepoint's; and each partition workflow starts with its source offsets,
 * event times and earliest processing-time timer.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { WorkflowNotFoundError } from "@temporalio/client";
import type { Logger } from "pino";
import { GroupActiveError, type KafkaClient } from "../../connectors/kafka/client.js";
import { defaultPartitionOf } from "../../connectors/kafka/send-chunks.js";
import { transactionalIdOf } from "../../connectors/kafka/sink.js";
import { instanceOfKeyGroup } from "../../core/plan/key-groups.js";
import { DEFAULT_KEY_GROUPS } from "../../core/plan/logical.js";
import { edgeKey, type PhysicalPlan } from "../../core/plan/physical.js";
import { kafkaSinksOf, kafkaSourceOf, keyedTopicsOf, topicPartition, workflowIndexOf, type StreamState } from "../../core/plan/stream.js";
import { keyGroupOfEntry, parseEntryKey, parseTimerNamespace } from "../../activities/state/entry-key.js";
import { STATE } from "../../activities/state/state-names.js";
import type { StreamJob } from "../../streaming/stream-job.js";
import { checkUserTopics, ensureJobTopics } from "../../streaming/job-topics.js";
import { SavepointError } from "./errors.js";
import { MANIFEST_FILE, parseManifest, type SavepointManifest } from "./manifest.js";
import { decodeState, type StateEntry } from "./state-file.js";
import type { SavepointStore } from "./store.js";
import { stateKindOf } from "./take.js";

/** Entries written per send while seeding a changelog partition. */
const SEED_CHUNK = 5_000;
/** Changelog partitions seeded at once. */
const SEED_PARALLEL = 4;

/** A savepoint read and checked: its manifest and each operator's entries. */
export interface LoadedSavepoint {
  id: string;
  path: string;
  manifest: SavepointManifest;
  state: Map<string, StateEntry[]>;
}

/** Reads a savepoint's manifest and data files, checking each file's size and checksum. */
export async function loadSavepoint(store: SavepointStore, id: string): Promise<LoadedSavepoint> {
  const path = store.pathOf(id);
  const manifest = parseManifest((await store.get(id, MANIFEST_FILE)).toString("utf8"), `${path}/${MANIFEST_FILE}`);
  const state = new Map<string, StateEntry[]>();
  for (const [uid, op] of Object.entries(manifest.operators)) state.set(uid, decodeState(await store.get(id, op.file), op, `${path}/${op.file}`));
  return { id, path, manifest, state };
}

/** How the savepoint's operators map onto the new plan's keyed operators. */
export interface RestoreMapping {
  /** Operators whose state is restored. */
  restored: string[];
  /** Keyed operators of the new plan the savepoint has no state for: they start empty. */
  added: string[];
  /** Operators of the savepoint the new plan lacks: their state is dropped (only when allowed). */
  dropped: string[];
}

/**
 * Checks a savepoint against the plan of the job to start: same pipeline, same key groups, no
 * operator whose state would be dropped (unless `allowNonRestoredState`), no operator whose kind of
 * state changed. A `SavepointError` naming what is wrong.
 */
export function checkRestore(manifest: SavepointManifest, plan: PhysicalPlan, jobId: string, allowNonRestoredState: boolean): RestoreMapping {
  const where = `savepoint ${manifest.id}`;
  if (manifest.job.pipeline !== plan.pipeline)
    throw new SavepointError(
      `${where} is of pipeline "${manifest.job.pipeline}", not "${plan.pipeline}": a savepoint restores only the pipeline it was taken of`,
    );
  const keyGroups = plan.keyGroups ?? DEFAULT_KEY_GROUPS;
  const keyed = keyedTopicsOf(plan, jobId);
  if (keyed.length > 0 && manifest.job.keyGroups !== keyGroups)
    throw new SavepointError(
      `${where} has ${manifest.job.keyGroups} key groups but the pipeline ${keyGroups}; the key groups (the most parallel a keyed operator can be) cannot change`,
    );
  const uids = new Set(keyed.map((t) => t.uid));
  const dropped = Object.keys(manifest.operators).filter((uid) => !uids.has(uid));
  if (dropped.length > 0 && !allowNonRestoredState) {
    const names = dropped.map((uid) => `"${uid}" (${manifest.operators[uid]!.kind}, ${manifest.operators[uid]!.entries} entries)`).join(", ");
    throw new SavepointError(
      `${where} holds state of operator(s) ${names} that the pipeline no longer has; restoring would drop it. ` +
        `Give the operator its old uid if it was renamed, or pass --allow-non-restored-state to drop the state`,
    );
  }
  for (const t of keyed) {
    const saved = manifest.operators[t.uid];
    const kind = stateKindOf(plan.nodes.find((n) => n.id === t.uid)!);
    if (saved && saved.kind !== kind)
      throw new SavepointError(
        `${where}: operator "${t.uid}" kept ${saved.kind} state, but in the pipeline it is now ${kind}; its state cannot be read that way (give the new operator another uid to start it empty)`,
      );
  }
  return {
    restored: keyed.filter((t) => manifest.operators[t.uid]).map((t) => t.uid),
    added: keyed.filter((t) => !manifest.operators[t.uid]).map((t) => t.uid),
    dropped,
  };
}

/** Options of `restoreSavepoint`. */
export interface RestoreOptions {
  allowNonRestoredState?: boolean;
  /** How long a consumer group may keep a dead member (the shim's session timeout): the offsets wait that long for it to leave. */
  sessionTimeoutMs: number;
  /** Create missing source and sink topics (`kafka.create-topics`) rather than refuse. */
  createTopics?: boolean;
  logger: Logger;
  onPhase?: (phase: string) => void;
}

/**
 * Prepares `job` (not started yet) to start from savepoint `id` of `store`: checks, seeds the
 * changelogs and source offsets, and sets each partition workflow's initial state. Returns the mapping.
 */
export async function restoreSavepoint(
  job: StreamJob,
  kafka: KafkaClient,
  store: SavepointStore,
  id: string,
  options: RestoreOptions,
): Promise<RestoreMapping> {
  const say = options.onPhase ?? (() => undefined);
  const saved = await loadSavepoint(store, id);
  const input = job.inputs[0]!;
  const { plan, jobId } = input;
  const mapping = checkRestore(saved.manifest, plan, jobId, options.allowNonRestoredState === true);
  const source = kafkaSourceOf(plan)!;
  const missing = saved.manifest.sources.topics.filter((t) => !source.topics.includes(t));
  if (missing.length > 0 && !options.allowNonRestoredState)
    throw new SavepointError(
      `savepoint ${id} read topic(s) ${missing.join(", ")} that the pipeline no longer reads; pass --allow-non-restored-state to drop their offsets`,
    );
  for (const line of await sinksGrown(kafka, saved.manifest, plan)) {
    say(`warning: ${line}`);
    options.logger.warn({ savepoint: id }, line);
  }
  await checkNewJob(job);
  const workflows = job.inputs.length;
  await checkUserTopics(kafka, plan, options.createTopics ? { partitions: workflows } : undefined);
  const partitionsOf = await sourcePartitions(kafka, source.topics);
  say(`restoring savepoint ${id} into job ${jobId} with ${workflows} partition workflow(s)`);
  await ensureJobTopics(kafka, plan, jobId);
  const timers: Array<Record<string, number>> = Array.from({ length: workflows }, () => ({}));
  const seeds = new Map<string, Seed>();
  const seeded: string[] = [];
  for (const t of keyedTopicsOf(plan, jobId)) {
    const entries = saved.state.get(t.uid);
    if (!entries) continue;
    const stage = plan.stages.find((s) => (s.keyed ? s.operators[0] === t.uid : (s.keyedLocal ?? []).includes(t.uid)))!;
    const target =
      t.repartition !== null
        ? (entry: string) => instanceOfKeyGroup(keyGroupOfEntry(entry), t.partitions, plan.keyGroups ?? DEFAULT_KEY_GROUPS)
        : (entry: string) => workflowIndexOf(defaultPartitionOf(kafkaKeyOf(parseEntryKey(entry).key), partitionsOf(source.topics[0]!)), workflows);
    const byPartition = Array.from({ length: t.partitions }, () => [] as StateEntry[]);
    for (const e of entries) {
      const j = target(e[0]);
      byPartition[j]!.push(e);
      const parts = parseEntryKey(e[0]);
      if (parts.name !== STATE.processingTimers) continue;
      const ts = parseTimerNamespace(parts.namespace).ts;
      if (!(timers[j]![stage.id]! <= ts)) timers[j]![stage.id] = ts;
    }
    for (const [j, list] of byPartition.entries())
      if (list.length > 0) {
        // The keyed operators of one stage share its transactional id: their partitions go in one transaction.
        const transactionalId = transactionalIdOf(plan.pipeline, jobId, stage.id, `p${j}`);
        const seed = seeds.get(transactionalId) ?? seeds.set(transactionalId, { transactionalId, parts: [] }).get(transactionalId)!;
        seed.parts.push({ changelog: t.changelog, partition: j, entries: list });
      }
    seeded.push(`operator ${t.uid}: ${entries.length} entries over ${byPartition.filter((l) => l.length > 0).length} of ${t.partitions} partition(s)`);
  }
  await seedAll(kafka, [...seeds.values()]);
  for (const line of seeded) say(line);
  for (const uid of mapping.added) say(`operator ${uid} is new: it starts with empty state`);
  for (const uid of mapping.dropped) say(`operator ${uid} is gone: its state (${saved.manifest.operators[uid]!.entries} entries) is dropped`);
  await setSourceOffsets(kafka, source.groupId, saved.manifest, source.topics, options);
  job.startFrom(initialStates(saved, plan, workflows, timers));
  return mapping;
}

/** The Kafka key a source-partitioned keyBy requires for an encoded key: a string key as it is, any other as its JSON. */
function kafkaKeyOf(encoded: string): string {
  const key = JSON.parse(encoded) as unknown;
  return typeof key === "string" ? key : encoded;
}

/**
 * The sink topics of the new job that have grown since the savepoint: something committed to them
 * after it (most often the old job, which went on). The new job writes its output from the
 * savepoint on after those records, so a reader of the topic sees that span twice, as with Flink.
 */
async function sinksGrown(kafka: KafkaClient, manifest: SavepointManifest, plan: Pick<PhysicalPlan, "nodes">): Promise<string[]> {
  const then = manifest.sinks?.offsets ?? {};
  const grown = new Map<string, number>();
  const admin = await kafka.admin();
  try {
    const topics = [...kafkaSinksOf(plan).keys()].filter((topic) => Object.keys(then).some((tp) => tp.startsWith(`${topic}:`)));
    const gone = new Set(await admin.missingTopics(topics));
    for (const topic of topics) {
      if (gone.has(topic)) continue;
      for (const p of await admin.partitionOffsets(topic)) {
        const before = then[topicPartition(topic, p.partition)] ?? 0;
        if (Number(p.high) > before) grown.set(topic, (grown.get(topic) ?? 0) + Number(p.high) - before);
      }
    }
  } finally {
    await admin.close();
  }
  return [...grown].map(
    ([topic, n]) =>
      `sink topic ${topic} has ${n} offset(s) past the savepoint (committed after it was taken, most likely by the old job going on); ` +
      "this job writes the output from the savepoint on after them, so readers see that span twice (stop with `sage stop --savepoint` to leave nothing after it)",
  );
}

/** Refuses a job id that has run: its changelogs and markers would be overwritten. */
async function checkNewJob(job: StreamJob): Promise<void> {
  for (let i = 0; i < job.workflowIds.length; i++) {
    try {
      await job.handle(i).describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) continue;
      throw err;
    }
    throw new SavepointError(`job ${job.jobId} exists already (${job.workflowIds[i]}); a job started from a savepoint is a new job: give it a new --job-id`);
  }
}

/** The partition count of each source topic, looked up once. */
async function sourcePartitions(kafka: KafkaClient, topics: readonly string[]): Promise<(topic: string) => number> {
  const admin = await kafka.admin();
  const counts = new Map<string, number>();
  try {
    for (const t of topics) counts.set(t, (await admin.partitionOffsets(t)).length);
  } finally {
    await admin.close();
  }
  return (t) => counts.get(t)!;
}

/** One changelog partition's share of a savepoint, written under the transactional id its stage will use. */
interface Seed {
  transactionalId: string;
  /** The stage's changelog partitions under that id (one per keyed operator of the stage). */
  parts: Array<{ changelog: string; partition: number; entries: readonly StateEntry[] }>;
}

/**
 * Writes every seed, `SEED_PARALLEL` at a time: each has its own transactional id and producer, and a
 * producer's sends wait for the broker one after another, so the seeds overlap their waits.
 */
async function seedAll(kafka: KafkaClient, seeds: readonly Seed[]): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < seeds.length) await seedOne(kafka, seeds[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(SEED_PARALLEL, seeds.length) }, lane));
}

/** Writes a seed's entries and sets the state-sequence marker of each of its changelog partitions to 0, in one transaction. */
async function seedOne(kafka: KafkaClient, { transactionalId, parts }: Seed): Promise<void> {
  const producer = kafka.transactionalProducer(transactionalId);
  try {
    const txn = await producer.begin();
    try {
      for (const { changelog, partition, entries } of parts)
        for (let i = 0; i < entries.length; i += SEED_CHUNK)
          await txn.send(entries.slice(i, i + SEED_CHUNK).map(([key, value]) => ({ topic: changelog, message: { key, value, partition } })));
      await txn.sendOffsets({ group: transactionalId, positions: parts.map(({ changelog, partition }) => ({ topic: changelog, partition, nextOffset: "0" })) });
      await txn.commit();
    } catch (err) {
      await txn.abort().catch(() => undefined);
      throw err;
    }
  } finally {
    await producer.close();
  }
}

/** Sets the source group's offsets to the savepoint's, waiting out a dead member's session (a killed shim). */
async function setSourceOffsets(
  kafka: KafkaClient,
  groupId: string,
  manifest: SavepointManifest,
  topics: readonly string[],
  options: RestoreOptions,
): Promise<void> {
  const admin = await kafka.admin();
  try {
    for (const topic of topics) {
      const offsets = Object.entries(manifest.sources.offsets)
        .filter(([tp]) => tp.slice(0, tp.lastIndexOf(":")) === topic)
        .map(([tp, offset]) => ({ partition: Number(tp.slice(tp.lastIndexOf(":") + 1)), offset }));
      if (offsets.length === 0) continue;
      const deadline = Date.now() + options.sessionTimeoutMs + 15_000;
      for (;;) {
        try {
          await admin.setGroupOffsets(groupId, topic, offsets);
          break;
        } catch (err) {
          if (!(err instanceof GroupActiveError) || Date.now() > deadline) throw err;
          options.logger.info({ groupId }, "consumer group still has a member (a stopped or killed shim leaves after its session timeout); waiting");
          await sleep(1_000);
        }
      }
    }
  } finally {
    await admin.close();
  }
}

/** Each partition workflow's state to start with: its source offsets, event times by stage, earliest processing-time timer. */
function initialStates(saved: LoadedSavepoint, plan: PhysicalPlan, workflows: number, timers: Array<Record<string, number>>): StreamState[] {
  const { manifest } = saved;
  const now = Date.now();
  return Array.from({ length: workflows }, (_, i) => {
    const owned = (tp: string) => workflowIndexOf(Number(tp.slice(tp.lastIndexOf(":") + 1)), workflows) === i;
    const next: Record<string, number> = {};
    for (const [tp, offset] of Object.entries(manifest.sources.offsets)) if (owned(tp)) next[tp] = offset;
    const eventTime: Record<string, Record<string, number>> = {};
    for (const stage of plan.stages) {
      const byOrigin: Record<string, number> = {};
      const keyedEdges = plan.edges.filter((e) => e.fromStage === stage.id && e.keyed);
      for (const [origin, t] of Object.entries(manifest.eventTime)) {
        if (stage.keyed || (stage.keyedLocal?.length && owned(origin))) {
          byOrigin[origin] = t;
          byOrigin[`@${origin}`] = now;
        }
        if (stage.source && owned(origin)) for (const e of keyedEdges) byOrigin[`${edgeKey(e)}|${origin}`] = t;
      }
      if (Object.keys(byOrigin).length > 0) eventTime[stage.id] = byOrigin;
    }
    return {
      next,
      processed: { ...next },
      pending: [],
      counts: {},
      batches: 0,
      records: 0,
      duplicatesDropped: 0,
      activities: 0,
      runs: 0,
      stopping: false,
      ...(Object.keys(eventTime).length > 0 ? { eventTime } : {}),
      ...(Object.keys(timers[i]!).length > 0 ? { timers: timers[i]! } : {}),
      fromSavepoint: saved.id,
    };
  });
}
