/**
 * One execution of one stage on one unit of work (a split or a batch): what every part of the
 * runner shares, from the plan and the host to the per-operator counts and the heartbeat tick.
 */
import type { Logger } from "pino";
import type { CompiledPipeline } from "../../core/api/pipeline.js";
import type { RecordContext, SourceContext } from "../../core/api/context.js";
import { InternalError } from "../../core/errors.js";
import type { OperatorCounts, StageCounts, StageInput, StageOutput } from "../../core/plan/job.js";
import type { LogicalNode } from "../../core/plan/logical.js";
import type { Stage } from "../../core/plan/physical.js";
import type { OutputInputs } from "../../core/plan/input-summary.js";
import { jobStagingDir } from "../../connectors/file/staging.js";
import type { KafkaSinkHost } from "../../connectors/kafka/sink.js";
import type { KeyedStateHost } from "./keyed-state.js";
import type { OperatorRegistry } from "../registry.js";
import { InMemoryStateBackend, type StateBackend } from "../state/backend.js";
import type { UnitLineage } from "./unit-lineage.js";
import type { UnitMessage } from "../../connectors/kafka/sink.js";
import type { LlmCallLineage } from "../../core/plan/lineage.js";

/** What the stage runner needs from its host activity. */
export interface StageHost {
  registry: OperatorRegistry;
  dataDir: string;
  logger: Logger;
  /** Records liveness with the server; throws when the activity was cancelled. */
  heartbeat(details?: unknown): void;
  /** True once the server asked to cancel this activity (checked per record: cheap). */
  cancelled?(): boolean;
  /** Kafka producers of this worker (streaming jobs only; a what-if gives one that captures the unit's writes). */
  kafka?(): StageKafka;
  /** The keyed state this worker serves (streaming jobs only). */
  keyedState?(): KeyedStateHost;
  /** The workflow run and attempt of this activity (what a batch's lineage line names). */
  execution?: StageExecution;
  /**
   * Streaming: runs the unit's chain on a stage thread (given when the unit may run there,
   * `thread-placement.ts`) over its batches, from `recountFrom` per slice; the runner keeps the
   * transaction and commits what the thread wrote.
   */
  streamThread?(input: StageInput, records: Uint8Array[], recountFrom: number[], parts?: StreamParts): Promise<StreamChainResult>;
}

/**
 * Parts of what a stage thread's chain writes, handed to the main thread while the chain runs (for
 * its transaction to send them ahead, `kafka.send-ahead`): every `part` messages, `take` gets them,
 * in order, before the chain's result comes back with the rest.
 */
export interface StreamParts {
  part: number;
  take(messages: UnitMessage[]): void;
}

/**
 * What a streaming unit wrote, handed from the stage thread that ran its chain to the main thread,
 * which commits it: the messages, how many carry a lineage header, and the model calls made.
 */
export interface StreamWritten {
  /** The messages not handed over as parts before (`StreamParts`), and how many parts were. */
  messages: UnitMessage[];
  parts: number;
  lineaged: number;
  calls: LlmCallLineage[];
}

/** A streaming unit's chain run without its commit (on a stage thread): the stage's output, and what the unit wrote. */
export interface StreamChainResult {
  output: StageOutput;
  written: StreamWritten;
}

/** What a streaming unit uses of the worker's Kafka producers: its topics made, its transaction held. */
export type StageKafka = Pick<KafkaSinkHost, "ensureTopic" | "withSession">;

/** The partition workflow, its run and the activity attempt a unit runs in. */
export interface StageExecution {
  workflowId: string;
  runId: string;
  attempt: number;
}

/** What the chain reads and sets of a streaming unit's Kafka side (`StreamCommit`). */
export interface UnitStream {
  sourceKey(): string | Buffer | null;
  /** The source partition (`topic:partition`) and offset of the source record in flight (null outside a source stage). */
  sourceAt(): [string, number] | null;
  /** The unit's batch id when lineage is on (null: off). */
  readonly batch: string | null;
  /** Keyed operators keep their outputs' input summaries (`kafka.lineage-inputs`). */
  readonly lineageInputs: boolean;
  /** The inputs of the keyed output in flight, for its `sage-inputs` header (null: none). */
  inputs: OutputInputs | null;
  /** The source record in flight, to come back to: a `mapBatch` emits its results after later records went in. */
  inFlight(): RecordInFlight;
  /** Makes `record` the one in flight again: what is written now is its output (its key, slice, recount and lineage). */
  resumeAt(record: RecordInFlight): void;
}

/** A streaming unit's source record in flight, as `UnitStream.inFlight` gives it. */
export interface RecordInFlight {
  readonly current: unknown;
  readonly slice: number;
  readonly recounting: boolean;
}

/** Records between heartbeats of a chain that never awaits. */
const HEARTBEAT_EVERY = 1000;

/** The shared state of one stage run. */
export class StageUnit {
  /** Records in, out and dead per operator of the stage. */
  readonly counts: StageCounts = {};
  /** The job's staging directory (sink shards, dead-letter shards, edge files). */
  readonly staging: string;
  private readonly nodes: Map<string, LogicalNode>;
  private sinceHeartbeat = 0;
  /**
   * The event time of the record travelling through the chain (set by a timestamp assigner, a Kafka
   * source record or a keyed operator's output); read where a keyBy sends the record on.
   */
  eventTime: number | undefined = undefined;
  /** The event time a timestamp assigner gave the record in flight (a source stage's keyed operators advance its origin by it). */
  assignedTime: number | undefined = undefined;
  /** Per-record lineage (null: off): the source record in flight and the model calls made. */
  lineage: UnitLineage | null = null;
  /** Streaming: the unit's Kafka side (`StreamCommit`), for the key of the source record in flight. */
  stream: UnitStream | null = null;

  constructor(
    readonly input: StageInput,
    readonly compiled: CompiledPipeline,
    readonly stage: Stage,
    readonly host: StageHost,
    readonly logger: Logger,
  ) {
    this.nodes = new Map(compiled.plan.nodes.map((n) => [n.id, n] as const));
    this.staging = jobStagingDir(host.dataDir, input.pipeline, input.jobId);
    for (const op of stage.operators) this.counts[op] = { in: 0, out: 0, dead: 0 };
  }

  /** The plan's operator `id`. */
  node(id: string): LogicalNode {
    const n = this.nodes.get(id);
    if (!n) throw new InternalError(`plan ${this.compiled.plan.hash.slice(0, 12)} has no operator "${id}"`);
    return n;
  }

  /** The counts of operator `id` of this stage. */
  countsOf(id: string): OperatorCounts {
    return this.counts[id]!;
  }

  /** What a user function sees with a record, on its `attempt`-th try. */
  recordContext(node: LogicalNode, attempt: number): RecordContext {
    const services = this.host.registry.services;
    return {
      operatorId: node.id,
      jobId: this.input.jobId,
      params: this.input.params,
      attempt,
      logger: this.logger,
      service: <T>(name: string) => services.get<T>(name, node.name),
    };
  }

  /** What a user source sees when it reads its split. */
  sourceContext(node: LogicalNode): SourceContext {
    return { params: this.input.params, parallelism: node.parallelism ?? this.compiled.plan.parallelism, logger: this.logger };
  }

  /**
   * The state of keyed operator `node` for this unit: the partition's state the runner opened
   * (streaming), or a fresh backend for a bounded job's key-group range (its whole input is in this unit).
   */
  async openState(node: LogicalNode): Promise<StateBackend> {
    let backend = this.stateBackends.get(node.id);
    if (!backend) this.stateBackends.set(node.id, (backend = new InMemoryStateBackend()));
    return backend;
  }

  /** Streaming: the worker's copy of each keyed operator's state (by uid), opened by the runner inside the unit's session. */
  readonly stateBackends = new Map<string, StateBackend>();

  /** Called per record: heartbeats every `HEARTBEAT_EVERY` records, and at once when cancelled. */
  tick(): void {
    if (++this.sinceHeartbeat >= HEARTBEAT_EVERY || this.host.cancelled?.()) {
      this.sinceHeartbeat = 0;
      this.host.heartbeat();
    }
  }
}
