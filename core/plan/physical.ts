/**
 * The optimizer: turns a logical graph into a physical plan of stages by operator fusion.
 * A stage is a tree of operators that runs as one activity call per split or batch.
 */
import type { SinkSpec } from "../api/connectors.js";
import { PipelineDefinitionError } from "../errors.js";
import { canonicalJson, sha256Hex } from "./hash.js";
import { STATELESS_KINDS, type LogicalGraph, type LogicalNode, type NodeInput } from "./logical.js";

/** Plan format version; part of the hash. */
export const PLAN_VERSION = 1;

/** A fused group of operators: one activity per split (source stages) or per batch. */
export interface Stage {
  /** `s0`, `s1`, ... in topological order. */
  id: string;
  /** Operator names joined by `+`: the activity type is `stage:<name>`. */
  name: string;
  /** Operator ids in topological order; the first is the stage's entry. */
  operators: string[];
  parallelism: number;
  /** True when the stage starts with a source (it runs once per split). */
  source: boolean;
  /** True when the stage starts with a keyed (stateful) operator: it runs per key-group range (bounded) or per repartition partition (streaming). */
  keyed?: boolean;
  /**
   * Keyed operators fused into this Kafka source stage behind a source-partitioned keyBy: they keep
   * state per partition workflow, on the records of its source partitions, with no repartition.
   */
  keyedLocal?: string[];
}

/** A record path between two stages: records cross workflow history here. */
export interface StageEdge {
  /** Key of the edge in a stage's outputs and in shard keys: the target stage id, `~n` appended for its n-th other way in. */
  id: string;
  fromStage: string;
  fromOperator: string;
  /** Output tag of `fromOperator` (null = main output). */
  tag: string | null;
  toStage: string;
  toOperator: string;
  /** Which input of `toOperator` (0 unless it has several: union, connected streams). */
  toInput?: number;
  /** A feedback back edge: records arrive one round later. */
  feedback?: boolean;
  /** Leaves a `broadcast` operator: every parallel instance of the target stage gets every record. */
  broadcast?: boolean;
  /** Leaves a `keyBy`: a repartition by key group (edge files per key-group range, or a Kafka repartition topic). */
  keyed?: boolean;
}

/** Key of an edge in a stage's outputs and in shard keys. */
export function edgeKey(edge: StageEdge): string {
  return edge.id;
}

/** Why two neighbouring operators were not fused. */
export interface ChainCut {
  from: string;
  to: string;
  reason: string;
}

/** The optimized plan the workflow interprets. JSON; stored in the workflow memo. */
export interface PhysicalPlan {
  version: number;
  pipeline: string;
  parallelism: number;
  fusion: boolean;
  nodes: LogicalNode[];
  stages: Stage[];
  edges: StageEdge[];
  cuts: ChainCut[];
  deadLetter: SinkSpec | null;
  /** Key groups of the keyed operators (only when there are some). */
  keyGroups?: number;
  /** sha256 of everything above. */
  hash: string;
}

/** Knobs of the optimizer that come from configuration, not from the pipeline. */
export interface CompileOptions {
  /** Job parallelism when the pipeline does not set one. */
  parallelism: number;
  /** Operator fusion on (default) or off (every operator its own stage, for measurement). */
  fusion: boolean;
}

/** Why `node` cannot join the stage of its inputs, or null when it can. */
function cutReason(
  node: LogicalNode,
  upstreams: LogicalNode[],
  stageOf: (id: string) => Stage | undefined,
  par: (n: LogicalNode) => number,
  fusion: boolean,
  kafkaStages: ReadonlySet<Stage>,
): string | null {
  if (node.kind === "keyed") {
    const local = sourcePartitionedCut(node, upstreams, stageOf, par, kafkaStages);
    if (local === null) return null;
    const keyBys = upstreams.map((u) => `"${u.name}"`).join(" and ");
    return `keyBy ${keyBys}: records are repartitioned by key group into stateful "${node.name}"${local}`;
  }
  // A keyBy is part of what feeds it, even unfused: the key, the timestamp and the watermark are taken there.
  if (!fusion && node.kind !== "keyBy") return "fusion disabled (execution.fusion: false)";
  if (node.kind === "feedback") return `"${node.name}" closes a feedback loop (its records cross workflow history once per round)`;
  if (!STATELESS_KINDS.has(node.kind)) return `"${node.name}" is stateful (${node.kind})`;
  const stages = new Set(upstreams.map((u) => stageOf(u.id)?.id));
  if (stages.size > 1) return `"${node.name}" joins inputs from different stages`;
  for (const upstream of upstreams) {
    // A stateless chain after a keyed operator fuses with it; nothing reads a keyBy but a keyed operator.
    if (!STATELESS_KINDS.has(upstream.kind) && upstream.kind !== "keyed") return `"${upstream.name}" is stateful (${upstream.kind})`;
    if (upstream.kind === "broadcast" && par(node) > 1)
      return `"${node.name}" reads the broadcast "${upstream.name}": each of its ${par(node)} instances gets every record`;
    if (par(node) !== par(upstream)) return `parallelism changes from ${par(upstream)} ("${upstream.name}") to ${par(node)} ("${node.name}")`;
  }
  return null;
}

/**
 * A keyed operator behind source-partitioned keyBys fuses into their stage when that stage reads a
 * Kafka source (its records already sit in the partition of their key): null then; otherwise why
 * not, to append to the repartition's reason ("" when no keyBy asked for it).
 */
function sourcePartitionedCut(
  node: LogicalNode,
  upstreams: LogicalNode[],
  stageOf: (id: string) => Stage | undefined,
  par: (n: LogicalNode) => number,
  kafkaStages: ReadonlySet<Stage>,
): string | null {
  if (!upstreams.some((u) => u.sourcePartitioned)) return "";
  const unused = (why: string): string => `; sourcePartitioned is not used: ${why}`;
  const other = upstreams.find((u) => !u.sourcePartitioned);
  if (other) return unused(`keyBy "${other.name}" is not source-partitioned`);
  const stages = new Set(upstreams.map((u) => stageOf(u.id)));
  const stage = stageOf(upstreams[0]!.id);
  if (stages.size > 1 || !stage) return unused(`the keyBys run in different stages`);
  if (!kafkaStages.has(stage))
    return unused(`keyBy "${upstreams[0]!.name}" does not run in a Kafka source's stage (a bounded source's records are not partitioned by key)`);
  if (par(node) !== stage.parallelism) return unused(`"${node.name}" has parallelism ${par(node)}, the source's stage ${stage.parallelism}`);
  return null;
}

/** Fuses a logical graph into stages and hashes the result. */
export function optimize(graph: LogicalGraph, options: CompileOptions): PhysicalPlan {
  const jobParallelism = graph.parallelism ?? options.parallelism;
  if (!Number.isInteger(jobParallelism) || jobParallelism < 1) {
    throw new PipelineDefinitionError(`job parallelism must be a positive integer, got ${String(jobParallelism)}`);
  }
  const byId = new Map(graph.nodes.map((n) => [n.id, n] as const));
  const par = (n: LogicalNode): number => n.parallelism ?? jobParallelism;
  const stageOf = new Map<string, Stage>();
  const stages: Stage[] = [];
  const edges: StageEdge[] = [];
  const cuts: ChainCut[] = [];
  const kafkaStages = new Set<Stage>();

  const addEdge = (from: LogicalNode, input: NodeInput, toInput: number, to: LogicalNode, reason: string): void => {
    cuts.push({ from: from.name, to: to.name, reason });
    const fromStage = stageOf.get(from.id)!.id;
    const stage = stageOf.get(to.id)!;
    // Unique among all edges into the stage: the key alone tells the stage which input a batch is for.
    const twins = edges.filter((e) => e.toStage === stage.id).length;
    edges.push({
      id: twins === 0 ? stage.id : `${stage.id}~${twins}`,
      fromStage,
      fromOperator: from.id,
      tag: input.tag,
      toStage: stage.id,
      toOperator: to.id,
      ...(toInput > 0 ? { toInput } : {}),
      ...(input.feedback ? { feedback: true } : {}),
      ...(from.kind === "broadcast" ? { broadcast: true } : {}),
      ...(from.kind === "keyBy" ? { keyed: true } : {}),
    });
  };
  const upstreamOf = (input: NodeInput, node: LogicalNode): LogicalNode => {
    const from = byId.get(input.from);
    if (!from) throw new PipelineDefinitionError(`operator "${node.name}" reads from unknown operator "${input.from}"`);
    return from;
  };

  for (const node of graph.nodes) {
    const forward = node.inputs.filter((i) => !i.feedback);
    const upstreams = forward.map((i) => upstreamOf(i, node));
    const reason =
      upstreams.length === 0 && node.kind !== "feedback" ? "source" : cutReason(node, upstreams, (id) => stageOf.get(id), par, options.fusion, kafkaStages);
    if (upstreams.length > 0 && reason === null) {
      const stage = stageOf.get(upstreams[0]!.id)!;
      stage.operators.push(node.id);
      stage.name += `+${node.name}`;
      if (node.kind === "keyed") (stage.keyedLocal ??= []).push(node.id);
      stageOf.set(node.id, stage);
      continue;
    }
    const stage: Stage = {
      id: `s${stages.length}`,
      name: node.name,
      operators: [node.id],
      parallelism: par(node),
      source: node.kind === "source",
      ...(node.kind === "keyed" ? { keyed: true } : {}),
    };
    if (node.source?.kind === "kafka") kafkaStages.add(stage);
    stages.push(stage);
    stageOf.set(node.id, stage);
    node.inputs.forEach((input, index) => {
      if (!input.feedback) addEdge(upstreamOf(input, node), input, index, node, reason ?? "");
    });
  }
  // Back edges last: their sources are declared after the feedback node they feed.
  for (const node of graph.nodes) {
    node.inputs.forEach((input, index) => {
      if (input.feedback)
        addEdge(upstreamOf(input, node), input, index, node, `feedback into "${node.name}" (at most ${node.feedback?.maxRounds ?? 0} rounds)`);
    });
  }

  const body = {
    version: PLAN_VERSION,
    pipeline: graph.pipeline,
    parallelism: jobParallelism,
    fusion: options.fusion,
    nodes: graph.nodes,
    stages,
    edges,
    cuts,
    deadLetter: graph.deadLetter,
    ...(graph.keyGroups !== undefined ? { keyGroups: graph.keyGroups } : {}),
  };
  return { ...body, hash: sha256Hex(canonicalJson(body)) };
}

/** Short form of a plan hash for display. */
export function shortHash(hash: string): string {
  return hash.slice(0, 12);
}
