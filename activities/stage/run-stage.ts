/**
 * The stage activity's entry point: runs one fused stage over one split or batch and returns the
 * counts and what leaves the stage. Bounded jobs stage their sink shards, dead letters and edge
 * files under the job's staging directory; streaming jobs write to Kafka in one transaction per
 * unit, holding the unit's transactional id from before the first record to the commit.
 */
import type { Logger } from "pino";
import { NonRetryableError, SinkError } from "../../core/errors.js";
import type { StageInput, StageOutput } from "../../core/plan/job.js";
import { transactionalIdOf } from "../../connectors/kafka/sink.js";
import { OperatorChain, SOURCE_ENTRY } from "./chain.js";
import { DeadLetters } from "./dead-letters.js";
import { EdgeOutputs } from "./edge-outputs.js";
import { RecordInvoker } from "./invoker.js";
import { Sinks } from "./sinks.js";
import { driveEdgeBatch, driveSource } from "./sources.js";
import { StreamCommit } from "./stream-commit.js";
import { StageUnit, type StageHost } from "./unit.js";

export type { StageHost } from "./unit.js";

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
  const edges = new EdgeOutputs(unit, deadLetters);
  const chain = new OperatorChain(unit, invoker, deadLetters, sinks, edges);
  /** Reads the unit's input through the chain, then runs the batch buffers and the sinks out. */
  const run = async (): Promise<void> => {
    const entries = await chain.wire();
    if (stage.source) await driveSource(unit, entries.get(SOURCE_ENTRY)!, deadLetters, stream, records);
    else await driveEdgeBatch(unit, entries);
    await chain.flushBatches();
    await sinks.finish();
    await deadLetters.finish();
  };
  if (stream) {
    if (!host.kafka) throw new SinkError(`stage ${stage.name} runs a streaming job but this worker has no Kafka connection`);
    // The whole unit holds its transactional id: fenced first, then run, then committed once.
    const id = transactionalIdOf(input.pipeline, input.jobId, stage.id, input.shard);
    await host.kafka().withSession(id, stream.outputTopics(), async (session) => {
      await run();
      await stream.commit(session);
    });
    return { counts: unit.counts, outputs: edges.inline };
  }
  await deadLetters.clearEarlierAttempt();
  try {
    await run();
    const refs = await edges.send();
    return { counts: unit.counts, outputs: edges.inline, ...(Object.keys(refs).length > 0 ? { refs } : {}) };
  } catch (err) {
    await sinks.discard();
    await deadLetters.discard();
    throw err;
  }
}
