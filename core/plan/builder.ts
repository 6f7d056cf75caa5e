/**
 * Collects the logical graph while the user's build function runs: assigns ids, checks names,
 * hashes function sources and keeps the function objects for the worker's registry.
 */
import { PipelineDefinitionError } from "../errors.js";
import type { SinkSpec, SourceSpec } from "../api/connectors.js";
import { canonicalJson, sha256Hex } from "./hash.js";
import { DEFAULT_KEY_GROUPS, DEFAULT_RETRY, type LogicalGraph, type LogicalNode, type NodeInput, type OperatorKind, type RetryPolicy } from "./logical.js";
import { resolveEventTime } from "./event-time.js";
import { OPERATOR_NAME_CHARS, isOperatorName } from "../names.js";

/** Options every operator takes. */
export interface OperatorOptions {
  /** Display name, unique in the pipeline; also the operator id unless `uid` is set. */
  name?: string;
  /** Stable id that survives renames (used for state and registry lookups). */
  uid?: string;
  /** Parallel instances of this operator (default: the job's parallelism). */
  parallelism?: number;
  /** Per-record retries before the record goes to the dead letters. */
  retry?: Partial<RetryPolicy>;
  /** Budget for one record in this operator, in ms (default: none). */
  timeoutMs?: number;
}

/** What a node is made from, before ids are assigned. */
export interface NodeDraft {
  kind: OperatorKind;
  inputs: NodeInput[];
  fn: unknown;
  options: OperatorOptions;
  source?: SourceSpec;
  sink?: SinkSpec;
  route?: LogicalNode["route"];
  feedback?: LogicalNode["feedback"];
  batchSize?: number;
  watermark?: LogicalNode["watermark"];
  keyed?: LogicalNode["keyed"];
  /** `keyBy` nodes: the records already arrive partitioned by the key (`KeyByOptions.sourcePartitioned`). */
  sourcePartitioned?: boolean;
  /** Further user functions of the operator by role (a window's result function): registered as `<id>#<role>`, part of its hash. */
  extraFns?: Record<string, unknown>;
}

function positiveInt(value: number | undefined, what: string): number | null {
  if (value === undefined) return null;
  if (!Number.isInteger(value) || value < 1) {
    throw new PipelineDefinitionError(`${what}: parallelism must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Hashes of function objects, taken when an object is first compiled: what `open` or `map` later
 * store in its fields (a client, a counter) is run-time state, and must not change the plan hash of
 * the next job submitted from the same process.
 */
const objectHashes = new WeakMap<object, string>();

/** Hash of a function's source; for objects, the class source and the object's own JSON fields when first seen. */
export function hashFunction(fn: unknown): { form: LogicalNode["form"]; hash: string } {
  if (fn === undefined || fn === null) return { form: "descriptor", hash: "" };
  if (typeof fn === "function") return { form: "lambda", hash: sha256Hex(fn.toString()) };
  const known = objectHashes.get(fn);
  if (known !== undefined) return { form: "object", hash: known };
  const proto = Object.getPrototypeOf(fn) as { constructor?: { toString(): string } } | null;
  const classSource = proto?.constructor?.toString() ?? "";
  const methods: string[] = [];
  for (const key of Object.keys(fn)) {
    const v = (fn as Record<string, unknown>)[key];
    if (typeof v === "function") methods.push(`${key}=${v.toString()}`);
  }
  let fields = "";
  try {
    fields = canonicalJson(fn);
  } catch {
    fields = "<unserializable fields>";
  }
  const hash = sha256Hex(`${classSource}\n${methods.join("\n")}\n${fields}`);
  if (typeof fn === "object") objectHashes.set(fn, hash);
  return { form: "object", hash };
}

/** Accumulates nodes while a pipeline's build function runs. */
export class GraphBuilder {
  private readonly nodes: LogicalNode[] = [];
  private readonly functions = new Map<string, unknown>();
  private readonly names = new Set<string>();
  private readonly consumed = new Set<string>();
  parallelism: number | null = null;
  deadLetter: SinkSpec | null = null;
  /** Key groups of keyed operators (`env.setMaxParallelism`). */
  keyGroups = DEFAULT_KEY_GROUPS;

  constructor(readonly pipeline: string) {}

  /** Adds a node and returns its id. */
  add(draft: NodeDraft): string {
    const index = this.nodes.length;
    if (draft.kind === "keyed" && draft.options.name === undefined && draft.options.uid === undefined) {
      throw new PipelineDefinitionError(
        `pipeline "${this.pipeline}": stateful operator #${index} (${draft.keyed?.op ?? "keyed"}) needs a uid or a name: its state is matched by it`,
      );
    }
    const name = draft.options.name ?? `${draft.kind}-${index}`;
    const id = draft.options.uid ?? name;
    for (const [label, value] of [
      ["name", name],
      ["uid", id],
    ] as const) {
      if (!isOperatorName(value)) {
        throw new PipelineDefinitionError(
          `pipeline "${this.pipeline}": operator ${label} "${value}" (operator #${index}, ${draft.kind}) must match ${OPERATOR_NAME_CHARS}`,
        );
      }
    }
    if (this.names.has(name) || this.nodes.some((n) => n.id === id)) {
      throw new PipelineDefinitionError(
        `pipeline "${this.pipeline}": two operators are named "${name}" (the second is operator #${index}, ${draft.kind}); names and uids must be unique`,
      );
    }
    this.names.add(name);
    const { form, hash: mainHash } = hashFunction(draft.fn);
    const extras = Object.entries(draft.extraFns ?? {}).filter(([, f]) => f !== undefined);
    const hash = extras.length === 0 ? mainHash : sha256Hex([mainHash, ...extras.map(([role, f]) => `${role}=${hashFunction(f).hash}`)].join("\n"));
    const node: LogicalNode = {
      id,
      name,
      kind: draft.kind,
      parallelism: positiveInt(draft.options.parallelism, `operator "${name}"`),
      inputs: draft.inputs,
      form,
      fnHash: hash,
      retry: { ...DEFAULT_RETRY, ...draft.options.retry },
      timeoutMs: draft.options.timeoutMs ?? 0,
      ...(draft.source ? { source: draft.source } : {}),
      ...(draft.sink ? { sink: draft.sink } : {}),
      ...(draft.route ? { route: draft.route } : {}),
      ...(draft.feedback ? { feedback: draft.feedback } : {}),
      ...(draft.batchSize !== undefined ? { batchSize: draft.batchSize } : {}),
      ...(draft.watermark ? { watermark: draft.watermark } : {}),
      ...(draft.keyed ? { keyed: draft.keyed } : {}),
      ...(draft.sourcePartitioned ? { sourcePartitioned: true } : {}),
    };
    if (node.batchSize !== undefined && (!Number.isInteger(node.batchSize) || node.batchSize < 1)) {
      throw new PipelineDefinitionError(`operator "${name}": batchSize must be an integer >= 1, got ${String(node.batchSize)}`);
    }
    if (node.retry.maxAttempts < 1 || !Number.isInteger(node.retry.maxAttempts)) {
      throw new PipelineDefinitionError(`operator "${name}": retry.maxAttempts must be an integer >= 1, got ${node.retry.maxAttempts}`);
    }
    for (const input of draft.inputs) this.consumed.add(`${input.from}#${input.tag ?? ""}`);
    this.nodes.push(node);
    if (draft.fn !== undefined && draft.fn !== null) this.functions.set(id, draft.fn);
    for (const [role, f] of extras) this.functions.set(`${id}#${role}`, f);
    return id;
  }

  /** Display name of an operator. */
  nameOf(id: string): string {
    return this.nodes.find((n) => n.id === id)?.name ?? id;
  }

  /** Adds an input to an existing node (closing a feedback loop). */
  addInput(nodeId: string, input: NodeInput): void {
    const node = this.nodes.find((n) => n.id === nodeId);
    if (!node) throw new PipelineDefinitionError(`pipeline "${this.pipeline}": no operator "${nodeId}" to feed`);
    node.inputs.push(input);
    this.consumed.add(`${input.from}#${input.tag ?? ""}`);
  }

  /** Sets the job parallelism declared by the pipeline. */
  setParallelism(value: number): void {
    this.parallelism = positiveInt(value, `pipeline "${this.pipeline}"`);
  }

  /** The finished graph and the user functions by operator id. */
  finish(): { graph: LogicalGraph; functions: ReadonlyMap<string, unknown> } {
    if (this.nodes.length === 0) {
      throw new PipelineDefinitionError(`pipeline "${this.pipeline}" declares no operators: call env.fromSource(...) or env.fromCollection(...)`);
    }
    const sinks = this.nodes.filter((n) => n.kind === "sink");
    if (sinks.length === 0) {
      throw new PipelineDefinitionError(`pipeline "${this.pipeline}" has no sink: end each stream with .sink(...) or .print()`);
    }
    for (const node of this.nodes) {
      if (node.kind === "feedback" && !node.inputs.some((i) => i.feedback)) {
        throw new PipelineDefinitionError(`pipeline "${this.pipeline}": feedback "${node.name}" is never filled: call stream.fillFeedback(...) on it`);
      }
      const sideOutputsOnly = node.kind === "process" || node.kind === "route";
      if (node.kind !== "sink" && !sideOutputsOnly && !this.consumed.has(`${node.id}#`)) {
        throw new PipelineDefinitionError(`pipeline "${this.pipeline}": the output of operator "${node.name}" goes nowhere; end the stream with .sink(...)`);
      }
    }
    const keyed = this.nodes.some((n) => n.kind === "keyed");
    if (keyed) resolveEventTime(this.pipeline, this.nodes);
    return {
      graph: {
        pipeline: this.pipeline,
        parallelism: this.parallelism,
        nodes: this.nodes,
        deadLetter: this.deadLetter,
        ...(keyed ? { keyGroups: this.keyGroups } : {}),
      },
      functions: this.functions,
    };
  }
}
