/**
 * The stage activity's entry point: runs one fused stage over one split or batch and returns the
 * counts and what leaves the stage. Bounded jobs stage their sink shards, dead letters and edge
 * files under the job's staging directory; streaming jobs write to Kafka in one transaction per
 * unit, holding the unit's transactional id from before the first record to the commit.
 */
import type { Logger } from "pino";
import { NonRetryableError, SinkError } from "../../core/errors.js";
import type { StageInput, StageOutput } from "../../core/plan/job.js";
import { transactionalIdOf, type SinkSession } from "../../connectors/kafka/sink.js";
import { changelogTopicOf } from "../../core/plan/stream.js";
import { OperatorChain } from "./chain.js";
import { DeadLetters } from "./dead-letters.js";
import { EdgeOutputs } from "./edge-outputs.js";
import { RecordInvoker } from "./invoker.js";
import { Sinks } from "./sinks.js";
import { driveEdgeBatch, driveKeyedStream, driveKeyedUnit, driveSource } from "./sources.js";
import { StreamCommit } from "./stream-commit.js";
import { StageUnit, type StageHost } from "./unit.js";

export type { StageHost } from "./unit.js";

/** The late records of the stage's keyed operator, if it has one and saw any. */
function lateOf(chain: OperatorChain): Pick<StageOutput, "late"> {
  const op = chain.keyed?.operator;
  if (!op || op.lateDropped + op.lateSide === 0) return {};
  return { late: { [chain.keyed!.node.id]: { dropped: op.lateDropped, side: op.lateSide } } };
}

/**
 * Streaming keyed stage: the worker's copy of its partition's state, current at the progress
 * marker the session reads (rebuilt from the changelog when it is not), and what the unit needs to
 * commit the state's changes with its outputs.
 */
async function openKeyedState(unit: StageUnit, session: SinkSession) {
  const { input, stage, compiled, host } = unit;
  const slices = input.stream!.slices;
  const partition = slices[0]?.partition ?? input.stream!.timerPartition;
  if (partition === undefined) throw new NonRetryableError(`keyed stage ${stage.name} got a unit with neither slices nor a timer partition`);
  if (slices.some((s) => s.partition !== partition)) {
    throw new NonRetryableError(`keyed stage ${stage.name} got slices of several repartition partitions; a keyed operator's parallelism must equal the job's`);
  }
  if (!host.keyedState) throw new SinkError(`stage ${stage.name} keeps keyed state but this worker has no Kafka connection`);
  const state = host.keyedState();
  const uid = stage.operators[0]!;
  const changelog = changelogTopicOf(compiled.plan.pipeline, input.jobId, uid);
  // The state's sequence marker (committed units so far) says whether the local copy is current.
  const seq = await session.committedUpTo(changelog, partition);
  const opened = await state.open(changelog, partition, seq);
  unit.stateBackend = opened.backend;
  const sources = compiled.plan.nodes.flatMap((n) => (n.source?.kind === "kafka" ? n.source.topics : []));
  return {
    host: state,
    changelog,
    partition,
    backend: opened.backend,
    restored: opened.restored,
    origins: await state.originsOf(sources),
    seq: Math.max(seq, 0),
  };
}

/** Runs one stage activity. `records` are a streaming unit's encoded slices, one per slice. */
export async function runStage(input: StageInput, host: StageHost, logger: Logger, records: Uint8Array[] = []): Promise<StageOutput> {
  const compiled = host.registry.resolve(input);
  const stage = compiled.plan.stages.find((s) => s.id === input.stage);
  if (!stage) throw new NonRetryableError(`plan ${compiled.plan.hash.slice(0, 12)} has no stage "${input.stage}"`);
  const unit = new StageUnit(input, compiled, stage, host, logger);
  const stream = input.stream ? new StreamCommit(unit, input.stream) : null;
  const deadLetters = new DeadLetters(unit, stream);
  const invoker = new RecordInvoker(unit, deadLetters);
  const sinks = new Sinks(unit, invoker, stream);
  const edges = new EdgeOutputs(unit, deadLetters, stream);
  const chain = new OperatorChain(unit, invoker, deadLetters, sinks, edges);
  /** Streaming keyed stages: the event time per origin after the unit. */
  let eventTime: Record<string, number> | undefined;
  /** Reads the unit's input through the chain, then runs the batch buffers and the sinks out. */
  const run = async (origins: readonly string[] = []): Promise<void> => {
    const entries = await chain.wire();
    if (stage.source) await driveSource(unit, entries, deadLetters, stream, records);
    else if (stream && chain.keyed) eventTime = await driveKeyedStream(unit, chain.keyed, entries, stream, records, origins);
    else if (input.keyed && chain.keyed) await driveKeyedUnit(unit, chain.keyed, entries);
    else await driveEdgeBatch(unit, entries);
    await chain.flushBatches();
    await sinks.finish();
    await deadLetters.finish();
  };
  if (stream) {
    if (!host.kafka) throw new SinkError(`stage ${stage.name} runs a streaming job but this worker has no Kafka connection`);
    // The whole unit holds its transactional id: fenced first, then run, then committed once.
    const id = transactionalIdOf(input.pipeline, input.jobId, stage.id, input.shard);
    let restored: StageOutput["restored"];
    let nextTimer: number | null | undefined;
    let stateSize: StageOutput["stateSize"];
    await host.kafka().withSession(id, stream.outputTopics(), async (session) => {
      if (!stage.keyed) {
        await run();
        eventTime = edges.finishRepartitions();
        await stream.commit(session);
        return;
      }
      const state = await openKeyedState(unit, session);
      restored = state.restored;
      try {
        await run(state.origins);
        nextTimer = chain.keyed?.operator.nextProcessingTimer() ?? null;
        stateSize = state.backend.size();
        // The changes go to the changelog in the unit's transaction; they are applied to the local copy only once it committed.
        for (const change of state.backend.unitChanges()) stream.write(state.changelog, { key: change.key, value: change.value, partition: state.partition });
        // The state's sequence number advances with every committed unit: it is what a local copy is checked against.
        const seq = { topic: state.changelog, partition: state.partition, nextOffset: state.seq + 1 };
        const outcome = await stream.commit(session, [seq]);
        if (outcome === "skipped") {
          // An earlier attempt committed this unit: the copy (current at the marker) already holds its changes.
          state.backend.discardUnit();
        } else {
          state.backend.takeChanges();
          if (outcome === "committed") state.host.committed(state.changelog, state.partition, seq.nextOffset);
        }
      } catch (err) {
        // Not committed (or in doubt: then the marker moved, and the next unit rebuilds the copy).
        state.backend.discardUnit();
        throw err;
      }
    });
    return {
      counts: unit.counts,
      outputs: edges.inline,
      ...(eventTime ? { eventTime } : {}),
      ...(restored ? { restored } : {}),
      ...(nextTimer !== undefined ? { nextTimer } : {}),
      ...(stateSize ? { stateSize } : {}),
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
