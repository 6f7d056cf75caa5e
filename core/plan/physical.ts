/**
 * The optimizer: turns a logical graph into a physical plan of stages by operator fusion.
 * A stage is a tree of operators that runs as one activity call per split or batch.
 */
import type { SinkSpec } from "../api/connectors.js";
import { PipelineDefinitionError } from "../errors.js";
import { canonicalJson, sha256Hex } from "./hash.js";
import { STATELESS_KINDS, type LogicalGraph, type LogicalNode } from "./logical.js";

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
}

/** A record path between two stages: records cross workflow history here. */
export interface StageEdge {
  fromStage: string;
  fromOperator: string;
  /** Output tag of `fromOperator` (null = main output). */
  tag: string | null;
  toStage: string;
  toOperator: string;
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

/** Why `node` cannot join the stage of its input, or null when it can. */
function cutReason(node: LogicalNode, upstream: LogicalNode, par: (n: LogicalNode) => number, fusion: boolean): string | null {
  if (!fusion) return "fusion disabled (execution.fusion: false)";
  if (node.inputs.length !== 1) return `"${node.name}" has ${node.inputs.length} inputs`;
  if (!STATELESS_KINDS.has(node.kind)) return `"${node.name}" is stateful (${node.kind})`;
  if (!STATELESS_KINDS.has(upstream.kind)) return `"${upstream.name}" is stateful (${upstream.kind})`;
  if (par(node) !== par(upstream)) return `parallelism changes from ${par(upstream)} ("${upstream.name}") to ${par(node)} ("${node.name}")`;
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

  for (const node of graph.nodes) {
    const first = node.inputs[0];
    const upstream = first ? byId.get(first.from) : undefined;
    if (first && !upstream) throw new PipelineDefinitionError(`operator "${node.name}" reads from unknown operator "${first.from}"`);
    const reason = upstream ? cutReason(node, upstream, par, options.fusion) : "source";
    if (upstream && reason === null) {
      const stage = stageOf.get(upstream.id)!;
      stage.operators.push(node.id);
      stage.name += `+${node.name}`;
      stageOf.set(node.id, stage);
      continue;
    }
    const stage: Stage = { id: `s${stages.length}`, name: node.name, operators: [node.id], parallelism: par(node), source: node.kind === "source" };
    stages.push(stage);
    stageOf.set(node.id, stage);
    for (const input of node.inputs) {
      const from = byId.get(input.from)!;
      cuts.push({ from: from.name, to: node.name, reason: reason ?? "" });
      edges.push({ fromStage: stageOf.get(from.id)!.id, fromOperator: from.id, tag: input.tag, toStage: stage.id, toOperator: node.id });
    }
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
  };
  return { ...body, hash: sha256Hex(canonicalJson(body)) };
}

/** Short form of a plan hash for display. */
export function shortHash(hash: string): string {
  return hash.slice(0, 12);
}
