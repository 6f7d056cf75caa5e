/** The logical graph: one node per user operator, exactly as declared. */
import type { SinkSpec, SourceSpec } from "../api/connectors.js";
import type { WatermarkSpec } from "../api/time.js";
import type { WindowSpec } from "../api/windows.js";

/** Kinds of operators in a logical graph. */
export type OperatorKind =
  | "source"
  | "map"
  | "mapBatch"
  | "flatMap"
  | "filter"
  | "process"
  | "sink"
  | "route"
  | "union"
  | "broadcast"
  | "coMap"
  | "coFlatMap"
  | "feedback"
  | "timestamps"
  | "keyBy"
  | "keyed";

/** Operators that keep no state between records and so may fuse with their neighbours. */
export const STATELESS_KINDS: ReadonlySet<OperatorKind> = new Set([
  "source",
  "map",
  "mapBatch",
  "flatMap",
  "filter",
  "process",
  "sink",
  "route",
  "union",
  "broadcast",
  "coMap",
  "coFlatMap",
  "feedback",
  "timestamps",
  "keyBy",
]);

/** What a keyed operator (`kind: "keyed"`) does with the records of each key. */
export type KeyedSpec =
  | { op: "reduce" | "aggregate" | "process" }
  | {
      op: "window";
      window: WindowSpec;
      /** The function applied to each window: incremental (reduce, aggregate) or over all its records. */
      apply: "reduce" | "aggregate" | "process";
      allowedLatenessMs: number;
      /** Output tag of records too late for every window they belong to (null: they are dropped, and counted). */
      lateTag: string | null;
      /** A result function turns (key, window, result) into the output (`aggregate(agg, fn)`). */
      withResultFn: boolean;
    }
  | { op: "windowJoin"; window: WindowSpec }
  | { op: "intervalJoin"; lowerMs: number; upperMs: number };

/** Default number of key groups: the most parallel instances a keyed operator can ever have. */
export const DEFAULT_KEY_GROUPS = 128;

/** Output tag of a router for records whose label no branch claims (when `otherwise` is given). */
export const OTHERWISE_TAG = "__otherwise";

/** Per-record retry policy of an operator; retries run inside the stage activity. */
export interface RetryPolicy {
  /** Tries per record, the first included (1 = no retry). */
  maxAttempts: number;
  /** Delay before the first retry. */
  initialIntervalMs: number;
  /** Growth of the delay per retry. */
  backoffCoefficient: number;
  /** Cap of the delay. */
  maxIntervalMs: number;
}

/** Defaults for `RetryPolicy`. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, initialIntervalMs: 100, backoffCoefficient: 2, maxIntervalMs: 5_000 };

/** An input edge of a node: the upstream node and which of its outputs (null = main). */
export interface NodeInput {
  from: string;
  tag: string | null;
  /** A back edge of a feedback loop (always crosses workflow history; bounded by `maxRounds`). */
  feedback?: boolean;
}

/** One user operator. */
export interface LogicalNode {
  /** Stable id: `uid`, else `name`. */
  id: string;
  /** Display name (unique in the pipeline). */
  name: string;
  kind: OperatorKind;
  /** Explicit parallelism, or null to inherit the job's. */
  parallelism: number | null;
  inputs: NodeInput[];
  /** How the user gave the function: a lambda, an object, or a built-in descriptor. */
  form: "lambda" | "object" | "descriptor";
  /** Hash of the function's source (and an object's own fields). */
  fnHash: string;
  /** Per-record retry policy, merged with the defaults. */
  retry: RetryPolicy;
  /** Wall-clock budget for one record in this operator, ms (0 = none). */
  timeoutMs: number;
  source?: SourceSpec;
  sink?: SinkSpec;
  /** Routers: the branch labels, and whether unmatched records go to an `otherwise` branch. */
  route?: { labels: string[]; otherwise: boolean };
  /** Feedback nodes: the most rounds a record may loop before it is dead-lettered. */
  feedback?: { maxRounds: number };
  /** `mapBatch` nodes: the most records per call (a stage's batch is cut into calls of at most this many). */
  batchSize?: number;
  /** `timestamps` nodes: the watermark strategy (the function, if any, is the timestamp assigner). */
  watermark?: WatermarkSpec;
  /**
   * `keyBy` nodes: the user says the records already arrive partitioned by this key (each one's
   * Kafka key equals it), so a keyed operator reading it in a Kafka source's stage needs no repartition.
   */
  sourcePartitioned?: boolean;
  /** `keyed` nodes: what they do per key. */
  keyed?: KeyedSpec;
  /**
   * `keyed` nodes: the watermark strategy of each input (found upstream of its keyBy when the
   * graph is finished; null when the input has no event time).
   */
  eventTime?: Array<WatermarkSpec | null>;
}

/** The whole logical graph of a pipeline. */
export interface LogicalGraph {
  pipeline: string;
  /** Job parallelism declared by the pipeline (null = from config). */
  parallelism: number | null;
  nodes: LogicalNode[];
  /** Where dead letters go (null = the default JSONL file under the data dir). */
  deadLetter: SinkSpec | null;
  /** Key groups of keyed operators (set only when the graph has keyed operators). */
  keyGroups?: number;
}
