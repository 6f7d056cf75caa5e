/**
 * Takes a consistent savepoint of a running streaming job without stopping it (after Flink's
 * aligned savepoint). A barrier signal asks every partition workflow to defer its processing-time
 * timers, and the shim to stop feeding source records; once the shim acknowledges that no source
 * batch of its is left, the keyed stages drain their repartition topics. When every workflow has
 * run all it accepted and no repartition partition holds an unread record, nothing can change:
 * the source offsets and event times come from the workflows, each keyed operator's state from
 * its compacted changelog, grouped by key group. Then the barrier is released (or, with `stop`,
 * the job stops under it, so nothing after the savepoint is ever committed).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import {
  kafkaSinksOf,
  kafkaSourceOf,
  keyedTopicsOf,
  topicPartition,
  workflowIndexOf,
  type StreamJobInput,
  type StreamProgress,
} from "../../core/plan/stream.js";
import type { LogicalNode } from "../../core/plan/logical.js";
import { DEFAULT_KEY_GROUPS } from "../../core/plan/logical.js";
import { savepointBarrierSignal, savepointReleaseSignal, streamInputQuery } from "../../workflows/contract.js";
import type { StreamJobHandle } from "../../streaming/stream-job.js";
import { SavepointError } from "./errors.js";
import { MANIFEST_FILE, SAVEPOINT_FORMAT, SAVEPOINT_VERSION, type SavepointManifest } from "./manifest.js";
import { encodeState } from "./state-file.js";
import type { SavepointStore } from "./store.js";

/** Options of `takeSavepoint`. */
export interface TakeSavepointOptions {
  store: SavepointStore;
  /** Stop the job under the barrier once the savepoint is written (`sage stop --savepoint`). */
  stop?: boolean;
  /** The savepoint's id (default: the job id and the time). */
  id?: string;
  /** Longest wait for the shim's acknowledgement, and again for the drain (default 120 s). */
  timeoutMs?: number;
  logger: Logger;
  /** Told each phase as it begins (a CLI prints them). */
  onPhase?: (phase: string) => void;
}

/** A savepoint written: its id, where it is, and its manifest. */
export interface TakenSavepoint {
  id: string;
  path: string;
  manifest: SavepointManifest;
}

/** What a keyed operator keeps, as the manifest names it. */
export function stateKindOf(node: Pick<LogicalNode, "keyed">): string {
  const k = node.keyed;
  if (!k) return "none";
  if (k.op === "window") return `window/${k.window.kind}/${k.apply}`;
  if (k.op === "windowJoin") return `windowJoin/${k.window.kind}`;
  return k.op;
}

/** A savepoint id: the job's, then the time (sortable), then a few random characters. */
function newSavepointId(jobId: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${jobId}-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Polls `check` every 250 ms until it returns true; a `SavepointError` with `what` after `timeoutMs`. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new SavepointError(what());
    await sleep(250);
  }
}

/** Takes a savepoint of `job` (see the module comment). */
export async function takeSavepoint(job: StreamJobHandle, kafka: KafkaClient, options: TakeSavepointOptions): Promise<TakenSavepoint> {
  const { store, logger } = options;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const say = options.onPhase ?? (() => undefined);
  const first = await job.progress();
  const started = first.workflows.flatMap((w, i) => (w && w.phase === "running" ? [i] : []));
  if (started.length === 0) throw new SavepointError(`streaming job ${job.jobId} has no running partition workflow to take a savepoint of`);
  const busy = first.workflows.find((w) => w?.barrier);
  if (busy?.barrier) throw new SavepointError(`streaming job ${job.jobId} is taking savepoint ${busy.barrier.id} already`);
  const input = await job.handle(started[0]!).query(streamInputQuery);
  const id = options.id ?? newSavepointId(job.jobId);
  const signalAll = (signal: typeof savepointBarrierSignal) =>
    Promise.all(
      job.workflowIds.map((_, i) =>
        job
          .handle(i)
          .signal(signal, id)
          .catch(() => undefined),
      ),
    );
  say(`savepoint ${id}: barrier sent to ${started.length} partition workflow(s)`);
  await Promise.all(started.map((i) => job.handle(i).signal(savepointBarrierSignal, id)));
  let taken = false;
  try {
    let last: Array<StreamProgress | null> = first.workflows;
    const refresh = async () => (last = (await job.progress()).workflows);
    await waitFor(
      async () => (await refresh(), started.every((i) => last[i]?.barrier?.id === id && last[i]?.barrier?.acked)),
      timeoutMs,
      () =>
        `savepoint ${id}: the shim of job ${job.jobId} did not stop feeding its sources within ${timeoutMs / 1000} s; is the job's shim (sage run, sage shim) running?`,
    );
    say("sources paused; draining the keyed stages");
    await waitFor(
      async () => drained(input, await refresh(), kafka),
      timeoutMs,
      () => `savepoint ${id}: the job did not drain within ${timeoutMs / 1000} s (pending batches: ${last.map((w) => w?.pending ?? 0).join(", ")})`,
    );
    say("drained; writing the state");
    const manifest = await write(id, input, last, kafka, store, options.stop === true);
    taken = true;
    logger.info({ savepoint: id, path: store.pathOf(id), operators: Object.keys(manifest.operators).length }, "savepoint written");
    if (options.stop) {
      say("stopping the job under the barrier");
      await job.stop();
      await job.result();
    }
    return { id, path: store.pathOf(id), manifest };
  } finally {
    if (!taken || !options.stop) await signalAll(savepointReleaseSignal);
  }
}

/**
 * True when nothing is left to run: every workflow has run all it accepted, and every repartition
 * partition holds no record past what its workflow accepted (read_committed: transaction markers
 * and aborted records do not count).
 */
async function drained(input: Omit<StreamJobInput, "state">, workflows: Array<StreamProgress | null>, kafka: KafkaClient): Promise<boolean> {
  if (workflows.some((w) => w !== null && w.pending > 0)) return false;
  for (const t of keyedTopicsOf(input.plan, input.jobId)) {
    if (t.repartition === null) continue;
    for (let j = 0; j < t.partitions; j++) {
      const next = workflows[j]?.next[topicPartition(t.repartition, j)] ?? 0;
      const rest = await kafka.readToEnd(t.repartition, [j], new Map([[j, next]]));
      if (rest.length > 0) return false;
    }
  }
  return true;
}

/** Reads the state and positions of the drained job and writes the savepoint's files, the manifest last. */
async function write(
  id: string,
  input: Omit<StreamJobInput, "state">,
  workflows: Array<StreamProgress | null>,
  kafka: KafkaClient,
  store: SavepointStore,
  stopped: boolean,
): Promise<SavepointManifest> {
  const { plan, jobId } = input;
  const source = kafkaSourceOf(plan);
  if (!source) throw new SavepointError(`job ${jobId} has no Kafka source: a bounded job needs no savepoint (it restarts from its completed splits)`);
  const offsets: Record<string, number> = {};
  const sinkOffsets: Record<string, number> = {};
  const admin = await kafka.admin();
  try {
    for (const topic of source.topics) {
      const parts = await admin.partitionOffsets(topic);
      const committed = await admin
        .committedOffsets(
          source.groupId,
          topic,
          parts.map((p) => p.partition),
        )
        .catch(() => new Map<number, string>());
      for (const p of parts) {
        const tp = topicPartition(topic, p.partition);
        const done = workflows[workflowIndexOf(p.partition, input.workflows)]?.processed[tp];
        // Never fed: where the shim would start reading it.
        const fallback = committed.get(p.partition) ?? (source.startFrom === "earliest" ? p.low : p.high);
        offsets[tp] = done ?? Number(fallback);
      }
    }
    for (const topic of kafkaSinksOf(plan).keys())
      for (const p of await admin.partitionOffsets(topic)) sinkOffsets[topicPartition(topic, p.partition)] = Number(p.high);
  } finally {
    await admin.close();
  }
  const eventTime: Record<string, number> = {};
  for (const w of workflows)
    for (const byOrigin of Object.values(w?.eventTime ?? {}))
      for (const [flat, t] of Object.entries(byOrigin)) {
        if (flat.startsWith("@")) continue;
        const origin = flat.slice(flat.indexOf("|") + 1);
        if (!(eventTime[origin]! >= t)) eventTime[origin] = t;
      }
  const operators: SavepointManifest["operators"] = {};
  for (const t of keyedTopicsOf(plan, jobId)) {
    const node = plan.nodes.find((n) => n.id === t.uid)!;
    const entries = new Map<string, string>();
    for (const m of await kafka.readToEnd(t.changelog)) {
      if (m.key === null) continue;
      const key = m.key.toString("utf8");
      if (m.value === null) entries.delete(key);
      else entries.set(key, m.value.toString("utf8"));
    }
    const file = `state/${t.uid}.jsonl.gz`;
    const { data, summary } = encodeState(entries);
    await store.put(id, file, data);
    operators[t.uid] = { name: node.name, kind: stateKindOf(node), sourcePartitioned: t.repartition === null, file, ...summary };
  }
  const manifest: SavepointManifest = {
    format: SAVEPOINT_FORMAT,
    version: SAVEPOINT_VERSION,
    id,
    createdAt: new Date().toISOString(),
    stopped,
    job: {
      pipeline: plan.pipeline,
      jobId,
      planHash: plan.hash,
      parallelism: input.workflows,
      keyGroups: plan.keyGroups ?? DEFAULT_KEY_GROUPS,
      params: input.params,
    },
    sources: { groupId: source.groupId, topics: source.topics, offsets },
    sinks: { offsets: sinkOffsets },
    eventTime,
    operators,
  };
  await store.put(id, MANIFEST_FILE, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  return manifest;
}
