/**
 * The stage activity's entry point: runs one fused stage over one split or batch and returns the
 * counts and what leaves the stage. Bounded jobs stage their sink shards, dead letters and edge
 * files under the job's staging directory; streaming jobs write to Kafka in one transaction per
 * unit, holding the unit's transactional id from before the first record to the commit.
 */
import type { Logger } from "pino";
import { NonRetryableError, SinkError } from "../../core/errors.js";
import { addCounts, type StageCounts, type StageInput, type StageOutput, type StreamSlice } from "../../core/plan/job.js";
import { transactionalIdOf, type SinkSession, type SourcePosition, type UnitMessage } from "../../connectors/kafka/sink.js";
import { changelogTopicOf, keyedOperatorsOf, workflowIndexOf } from "../../core/plan/stream.js";
import type { StateBackend } from "../state/backend.js";
import { WatermarkValve } from "./watermarks.js";
import { OperatorChain } from "./chain.js";
import { DeadLetters } from "./dead-letters.js";
import { EdgeOutputs } from "./edge-outputs.js";
import { RecordInvoker } from "./invoker.js";
import { Sinks } from "./sinks.js";
import { driveEdgeBatch, driveKeyedStream, driveKeyedUnit, driveSource } from "./sources.js";
import { StreamCommit } from "./stream-commit.js";
import { LINEAGE_TOPIC_CONFIGS } from "../../core/plan/lineage.js";
import { StageUnit, type StageHost, type StreamChainResult, type StreamParts } from "./unit.js";
import { UnitLineage } from "./unit-lineage.js";
import { withCallTrail } from "../../connectors/llm/call-trail.js";

export type { StageHost } from "./unit.js";

/** The late records of the stage's keyed operators that saw any, by operator id. */
function lateOf(chain: OperatorChain): Pick<StageOutput, "late"> {
  const late: NonNullable<StageOutput["late"]> = {};
  for (const [id, { operator: op }] of chain.keyedRuns) if (op.lateDropped + op.lateSide > 0) late[id] = { dropped: op.lateDropped, side: op.lateSide };
  return Object.keys(late).length > 0 ? { late } : {};
}

/** One keyed operator's state in a streaming unit: its changelog partition and the marker it is current at. */
interface KeyedOperatorState {
  uid: string;
  changelog: string;
  backend: StateBackend;
  /** Committed units of this partition so far (the changelog's state-sequence marker). */
  seq: number;
}

/**
 * Streaming stage with keyed operators: the worker's copy of each one's state in this unit's
 * partition (the repartition partition of a keyed stage; the partition workflow's index behind a
 * source-partitioned keyBy), current at the progress marker the session reads (rebuilt from the
 * changelog when it is not), and the source partitions whose event times make its watermark.
 */
async function openKeyedState(unit: StageUnit, session: SinkSession) {
  const { input, stage, compiled, host } = unit;
  const stream = input.stream!;
  const slices = stream.slices;
  const partition = stage.keyed ? (slices[0]?.partition ?? stream.timerPartition) : stream.workflowIndex;
  if (partition === undefined) throw new NonRetryableError(`keyed stage ${stage.name} got a unit with neither slices nor a timer partition`);
  if (stage.keyed && slices.some((s) => s.partition !== partition)) {
    throw new NonRetryableError(`keyed stage ${stage.name} got slices of several repartition partitions; a keyed operator's parallelism must equal the job's`);
  }
  if (!host.keyedState) throw new SinkError(`stage ${stage.name} keeps keyed state but this worker has no Kafka connection`);
  const state = host.keyedState();
  const operators: KeyedOperatorState[] = [];
  let restored: { entries: number; ms: number } | undefined;
  for (const uid of keyedOperatorsOf(stage)) {
    const changelog = changelogTopicOf(compiled.plan.pipeline, input.jobId, uid);
    // The state's sequence marker (committed units so far) says whether the local copy is current.
    const seq = await session.committedUpTo(changelog, partition);
    const opened = await state.open(changelog, partition, seq);
    unit.stateBackends.set(uid, opened.backend);
    operators.push({ uid, changelog, backend: opened.backend, seq: Math.max(seq, 0) });
    if (opened.restored) restored = { entries: (restored?.entries ?? 0) + opened.restored.entries, ms: (restored?.ms ?? 0) + opened.restored.ms };
  }
  const sources = compiled.plan.nodes.flatMap((n) => (n.source?.kind === "kafka" ? n.source.topics : []));
  const all = await state.originsOf(sources);
  // Behind a source-partitioned keyBy, only this workflow's source partitions feed the state.
  const origins = stage.keyed ? all : all.filter((o) => workflowIndexOf(Number(o.slice(o.lastIndexOf(":") + 1)), compiled.plan.parallelism) === partition);
  return { host: state, partition, operators, restored, origins };
}

/**
 * Leaves out of the unit the records an earlier unit of this transactional id committed: each
 * slice skips below its partition's progress marker. A unit can run again with more batches merged
 * in than its first run had (a local activity whose workflow task was lost while the server was
 * down runs again over everything that queued since); without this, the records its first run
 * committed would reach keyed state a second time, although their outputs are left out at commit.
 */
async function skipCommitted(slices: StreamSlice[], session: SinkSession): Promise<number[]> {
  const upTo = await Promise.all(slices.map((s) => session.committedUpTo(s.topic, s.partition)));
  return slices.map((s, i) => {
    const from = s.skipBelow;
    s.skipBelow = Math.max(s.skipBelow, upTo[i]!);
    return from;
  });
}

/** Longest unit note committed with the markers (the broker refuses offset metadata over 4 KiB by default). */
const NOTE_BYTES = 3_000;

/**
 * What a keyed unit notes with its markers: which unit (its first batch's sequence number), what it
 * counted, and the event time per origin it reported (absent in notes of older versions).
 */
interface UnitNote {
  u: number | string;
  c: StageCounts;
  e?: Record<string, number>;
}

/** The note of a keyed unit (without its event time when too long; undefined when even that is too long to commit). */
function unitNote(slices: readonly StreamSlice[], counts: StageCounts, eventTime: Record<string, number> | undefined): string | undefined {
  const first = slices[0];
  if (!first) return undefined;
  const fits = (note: UnitNote): string | undefined => {
    const text = JSON.stringify(note);
    return text.length <= NOTE_BYTES ? text : undefined;
  };
  return (eventTime ? fits({ u: first.seq, c: counts, e: eventTime }) : undefined) ?? fits({ u: first.seq, c: counts });
}

/**
 * What an earlier attempt of this keyed unit committed and the workflow never got (its workflow
 * task was lost, so the unit runs again and skips what is committed): its counts and event time,
 * read from the note it committed with its markers, when the note names this unit. Without the
 * event time the workflow's watermark would stay behind the skipped records for good, holding back
 * every window they close. Null when nothing was skipped, or no such note is there (a note too long
 * to commit, or an unpatched confluent client: the counts then fall short, and the event time waits
 * for later records).
 */
function notedUnit(
  slices: readonly StreamSlice[],
  from: readonly number[],
  session: SinkSession,
): { counts: StageCounts; eventTime?: Record<string, number> } | null {
  const skipped = slices.find((s, i) => s.skipBelow > from[i]!);
  if (!skipped) return null;
  const text = session.noteOf?.(skipped.topic, skipped.partition) ?? null;
  if (!text) return null;
  try {
    const note = JSON.parse(text) as UnitNote;
    if (note.u !== slices[0]!.seq) return null;
    return { counts: note.c, ...(note.e ? { eventTime: note.e } : {}) };
  } catch {
    return null;
  }
}

/** Per key, the later of two event-time maps (event times and the times origins last moved only go forward). */
function laterOf(a: Record<string, number> | undefined, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = Math.max(out[k] ?? v, v);
  return out;
}

/** The earliest of processing-time timers (null: none). */
function earliest(timers: Array<number | null>): number | null {
  const set = timers.filter((t) => t !== null);
  return set.length === 0 ? null : Math.min(...set);
}

/** The unit of `input` on `host`, with its Kafka side (streaming) and its lineage (when on). */
function unitOf(input: StageInput, host: StageHost, logger: Logger): { unit: StageUnit; stream: StreamCommit | null } {
  const compiled = host.registry.resolve(input);
  const stage = compiled.plan.stages.find((s) => s.id === input.stage);
  if (!stage) throw new NonRetryableError(`plan ${compiled.plan.hash.slice(0, 12)} has no stage "${input.stage}"`);
  const unit = new StageUnit(input, compiled, stage, host, logger);
  const stream = input.stream ? new StreamCommit(unit, input.stream) : null;
  unit.stream = stream;
  // Lineage: a streaming unit's with its batch id; a bounded unit's with `execution.lineage` (a redrive appends to the job's output: none).
  if (stream ? stream.batch !== null : input.runtime.lineage === true && !input.runtime.redrive)
    unit.lineage = stream ? new UnitLineage(() => stream.recordSource()) : new UnitLineage();
  return { unit, stream };
}

/** Runs `work` with the unit's model calls noted for its lineage (when on). */
function traced<T>(unit: StageUnit, work: () => Promise<T>): Promise<T> {
  return unit.lineage ? withCallTrail(unit.lineage, work) : work();
}

/** Runs one stage activity. `records` are a streaming unit's encoded slices, one per slice. */
export async function runStage(input: StageInput, host: StageHost, logger: Logger, records: Uint8Array[] = []): Promise<StageOutput> {
  const { unit, stream } = unitOf(input, host, logger);
  return traced(unit, () => runUnit(unit, stream, records));
}

/**
 * Runs a streaming unit's chain and keeps what it wrote instead of committing it: a stage thread's
 * part of a unit (`thread-placement.ts`), whose main thread holds the transaction. The slices'
 * `skipBelow` are the session's markers already; `recountFrom` is where each slice's records start
 * to run again for their counts only (as `skipCommitted` gave it).
 */
export async function runStreamChain(
  input: StageInput,
  host: StageHost,
  logger: Logger,
  records: Uint8Array[],
  recountFrom: number[],
  /** Where what the chain writes goes in parts while it runs (absent: all with the result). */
  parts?: StreamParts,
): Promise<StreamChainResult> {
  const { unit, stream } = unitOf(input, host, logger);
  if (!stream) throw new NonRetryableError(`stage ${input.stage} (shard ${input.shard}) is not a streaming unit`);
  stream.recountFrom = recountFrom;
  if (parts) stream.handParts(parts);
  return traced(unit, async () => {
    const { edges, chain, run } = wireUnit(unit, stream, records);
    await run();
    const eventTime = edges.finishRepartitions();
    return {
      output: { counts: unit.counts, outputs: edges.inline, ...(eventTime ? { eventTime } : {}), ...lateOf(chain) },
      written: stream.written(),
    };
  });
}

/** The parts of one unit's run; `run` reads the input through the chain, then runs the batch buffers and the sinks out. */
function wireUnit(unit: StageUnit, stream: StreamCommit | null, records: Uint8Array[]) {
  const { input, stage } = unit;
  const deadLetters = new DeadLetters(unit, stream);
  const invoker = new RecordInvoker(unit, deadLetters);
  const sinks = new Sinks(unit, invoker, stream);
  const edges = new EdgeOutputs(unit, deadLetters, stream);
  const chain = new OperatorChain(unit, invoker, deadLetters, sinks, edges);
  /** Returns a streaming keyed stage's event time per origin after the unit. */
  const run = async (origins: readonly string[] = []): Promise<Record<string, number> | undefined> => {
    let eventTime: Record<string, number> | undefined;
    const entries = await chain.wire();
    if (stage.source) {
      const runs = [...chain.keyedRuns.values()];
      const local =
        stream && runs.length > 0
          ? {
              runs,
              valve: new WatermarkValve(
                stream.stream.eventTime,
                origins,
                WatermarkValve.specsOf(runs.map((r) => r.node)),
                stream.stream.processingTime ?? Date.now(),
              ),
            }
          : null;
      await driveSource(unit, entries, deadLetters, stream, records, local);
      if (local) eventTime = local.valve.eventTime;
    } else if (stream && chain.keyed) eventTime = await driveKeyedStream(unit, chain.keyed, entries, stream, records, origins);
    else if (input.keyed && chain.keyed) await driveKeyedUnit(unit, chain.keyed, entries);
    else await driveEdgeBatch(unit, entries);
    await chain.flushBatches();
    await sinks.finish();
    await deadLetters.finish();
    return eventTime;
  };
  return { deadLetters, sinks, edges, chain, run };
}

/** Runs the unit's records through the stage, then commits (streaming) or stages (bounded) what it wrote. */
async function runUnit(unit: StageUnit, stream: StreamCommit | null, records: Uint8Array[]): Promise<StageOutput> {
  const { input, host, stage } = unit;
  const { deadLetters, sinks, edges, chain, run } = wireUnit(unit, stream, records);
  /** Streaming keyed stages: the event time per origin after the unit. */
  let eventTime: Record<string, number> | undefined;
  if (stream) {
    if (!host.kafka) throw new SinkError(`stage ${stage.name} runs a streaming job but this worker has no Kafka connection`);
    // The whole unit holds its transactional id: fenced first, then run, then committed once.
    const id = transactionalIdOf(input.pipeline, input.jobId, stage.id, input.shard);
    // The shim creates the lineage topic; batches signalled by anything else (a tool, a test) find it made here.
    const lineageTopic = input.stream?.lineageTopic;
    if (lineageTopic) await host.kafka().ensureTopic(lineageTopic, 1, LINEAGE_TOPIC_CONFIGS);
    let restored: StageOutput["restored"];
    let nextTimer: number | null | undefined;
    let states: StageOutput["states"];
    /** The output of a chain that ran on a stage thread. */
    let threaded: StageOutput | undefined;
    await host.kafka().withSession(id, stream.outputTopics(), async (session) => {
      const from = await skipCommitted(input.stream!.slices, session);
      await stream.begin(session);
      if (keyedOperatorsOf(stage).length === 0) {
        // What an earlier attempt committed runs again for its counts only: the workflow never got that attempt's.
        if (host.streamThread) {
          // The thread hands its messages over in parts as it writes them: they go ahead while it runs.
          const ahead = session.ahead;
          const parts = ahead ? { part: ahead.part, take: (messages: UnitMessage[]) => stream.adoptMessages(messages) } : undefined;
          const ran = await host.streamThread(input, records, from, parts);
          stream.adopt(ran.written);
          threaded = ran.output;
        } else {
          stream.recountFrom = from;
          await run();
          eventTime = edges.finishRepartitions();
        }
        await stream.commit();
        return;
      }
      // State must not see a committed record twice: an earlier attempt's counts and event time come from its note instead.
      const noted = notedUnit(input.stream!.slices, from, session);
      const state = await openKeyedState(unit, session);
      restored = state.restored;
      try {
        eventTime = await run(state.origins);
        if (noted) addCounts(unit.counts, noted.counts);
        const repartitioned = edges.finishRepartitions();
        if (repartitioned) eventTime = { ...eventTime, ...repartitioned };
        if (noted?.eventTime) eventTime = laterOf(eventTime, noted.eventTime);
        nextTimer = earliest([...chain.keyedRuns.values()].map((r) => r.operator.nextProcessingTimer()));
        states = {};
        const markers: SourcePosition[] = [];
        for (const op of state.operators) {
          states[op.uid] = op.backend.size();
          // The changes go to the changelog in the unit's transaction; they are applied to the local copy only once it committed.
          for (const change of op.backend.unitChanges()) stream.write(op.changelog, { key: change.key, value: change.value, partition: state.partition });
          // The state's sequence number advances with every committed unit: it is what a local copy is checked against.
          markers.push({ topic: op.changelog, partition: state.partition, nextOffset: op.seq + 1 });
        }
        const outcome = await stream.commit(markers, unitNote(input.stream!.slices, unit.counts, eventTime));
        for (const op of state.operators) {
          if (outcome === "skipped") {
            // An earlier attempt committed this unit: the copy (current at the marker) already holds its changes.
            op.backend.discardUnit();
            continue;
          }
          op.backend.takeChanges();
          if (outcome === "committed") state.host.committed(op.changelog, state.partition, op.seq + 1);
        }
      } catch (err) {
        // Not committed (or in doubt: then the marker moved, and the next unit rebuilds the copy).
        for (const op of state.operators) op.backend.discardUnit();
        throw err;
      }
    });
    if (threaded) return threaded;
    return {
      counts: unit.counts,
      outputs: edges.inline,
      ...(eventTime ? { eventTime } : {}),
      ...(restored ? { restored } : {}),
      ...(nextTimer !== undefined ? { nextTimer } : {}),
      ...(states ? { states } : {}),
      ...lateOf(chain),
    };
  }
  await deadLetters.clearEarlierAttempt();
  try {
    await run();
    const refs = await edges.send();
    const keyed = await edges.sendKeyed();
    return {
      counts: unit.counts,
      outputs: edges.inline,
      ...(Object.keys(refs).length > 0 ? { refs } : {}),
      ...(Object.keys(keyed).length > 0 ? { keyed } : {}),
      ...lateOf(chain),
    };
  } catch (err) {
    await sinks.discard();
    await deadLetters.discard();
    throw err;
  }
}
