/**
 * The operator chain of a stage (after Flink's `OperatorChain`): wires the stage's operators into
 * pushes, each operator's outputs to the operators that read them and to the edges that leave the
 * stage, and returns the stage's ways in (its source, or each incoming edge).
 */
import type { LogicalNode } from "../../core/plan/logical.js";
import { edgeKey } from "../../core/plan/physical.js";
import { operatorEntryKey } from "../../core/plan/redrive.js";
import type { DeadLetters } from "./dead-letters.js";
import type { EdgeOutputs } from "./edge-outputs.js";
import type { RecordInvoker } from "./invoker.js";
import { operatorPushes, type OperatorWiring } from "./operators.js";
import { outputOf, type Push, type Target } from "./push.js";
import type { Sinks } from "./sinks.js";
import type { StageUnit } from "./unit.js";
import { KeyedRun } from "./keyed.js";
import { createKeyedOperator } from "../state/create.js";
import { InputLineage } from "../state/input-lineage.js";

/** The way into a source stage in the map `wire` returns; an incoming edge's is its edge key. */
export const SOURCE_ENTRY = "";

/** The wired operators of one stage run. */
export class OperatorChain implements OperatorWiring {
  /** What reads each operator output, by `operator#tag`. */
  private readonly targets = new Map<string, Target[]>();
  /** Flushes of the `mapBatch` operators' buffers, by operator id. */
  private readonly flushes = new Map<string, () => Promise<void>>();
  /** The runs of the stage's keyed operators, by operator id. */
  readonly keyedRuns = new Map<string, KeyedRun>();

  constructor(
    readonly unit: StageUnit,
    readonly invoker: RecordInvoker,
    readonly deadLetters: DeadLetters,
    readonly sinks: Sinks,
    private readonly edges: EdgeOutputs,
  ) {}

  /**
   * Wires the stage: edges leaving the stage first, then operators from last to first, so that each
   * operator's readers exist when its outputs are made. Returns the entry of each way into the stage,
   * counting each record into the operator it enters, and the way in to each operator (`operatorEntryKey`).
   */
  async wire(): Promise<Map<string, Push>> {
    const { stage, compiled } = this.unit;
    /** The push of the first edge from this stage into each operator of another stage (the way a re-driven record takes there). */
    const leaving = new Map<string, Push>();
    for (const edge of compiled.plan.edges.filter((e) => e.fromStage === stage.id)) {
      const push = this.edges.push(edge);
      this.read(edge.fromOperator, edge.tag, { push, counts: null });
      if (!edge.feedback && !leaving.has(edge.toOperator)) leaving.set(edge.toOperator, push);
    }
    const pushes = new Map<string, Push[]>();
    for (const id of [...stage.operators].reverse()) {
      const node = this.unit.node(id);
      const own = await operatorPushes(this, node);
      pushes.set(id, own);
      const counts = this.unit.countsOf(id);
      node.inputs.forEach((input, index) => {
        if (!input.feedback && stage.operators.includes(input.from)) this.read(input.from, input.tag, { push: own[index] ?? own[0]!, counts });
      });
    }
    const entries = new Map<string, Push>();
    const entry = (operator: string, push: Push): Push => outputOf(null, [{ push, counts: this.unit.countsOf(operator) }]);
    if (stage.source) entries.set(SOURCE_ENTRY, entry(stage.operators[0]!, pushes.get(stage.operators[0]!)![0]!));
    for (const edge of compiled.plan.edges.filter((e) => e.toStage === stage.id)) {
      const own = pushes.get(edge.toOperator)!;
      entries.set(edgeKey(edge), entry(edge.toOperator, own[edge.toInput ?? 0] ?? own[0]!));
    }
    // A re-driven dead letter enters at the operator it failed in: by the operator's own way in, or by the edge that leads to it.
    for (const id of stage.operators) {
      const own = pushes.get(id)?.[0];
      if (own) entries.set(operatorEntryKey(id), entry(id, own));
    }
    for (const [to, push] of leaving) if (!entries.has(operatorEntryKey(to))) entries.set(operatorEntryKey(to), push);
    return entries;
  }

  output(node: LogicalNode, tag: string | null): Push {
    return outputOf(this.unit.countsOf(node.id), this.targets.get(`${node.id}#${tag ?? ""}`) ?? []);
  }

  onInputEnd(node: LogicalNode, flush: () => Promise<void>): void {
    this.flushes.set(node.id, flush);
  }

  async keyedRun(node: LogicalNode, fn: unknown): Promise<KeyedRun> {
    const backend = await this.unit.openState(node);
    const result = this.unit.compiled.functions.get(`${node.id}#result`);
    // Streaming with lineage and kafka.lineage-inputs on: the operator keeps its outputs' input summaries in its state.
    const lineage = this.unit.stream && this.unit.stream.batch !== null && this.unit.stream.lineageInputs ? new InputLineage(backend) : null;
    const operator = createKeyedOperator(node, { main: fn, ...(result !== undefined ? { result } : {}) }, backend, Date.now, lineage);
    const run = new KeyedRun(this, node, operator, backend, lineage);
    this.keyedRuns.set(node.id, run);
    return run;
  }

  /** The keyed operator a keyed stage starts with (it reads the repartition), or null. */
  get keyed(): KeyedRun | null {
    const { stage } = this.unit;
    return stage.keyed ? (this.keyedRuns.get(stage.operators[0]!) ?? null) : null;
  }

  /** Runs the `mapBatch` buffers out, upstream operators first (their output fills the next buffer). */
  async flushBatches(): Promise<void> {
    for (const id of this.unit.stage.operators) await this.flushes.get(id)?.();
  }

  /** Adds `target` to the readers of `operator`'s output `tag`. */
  private read(operator: string, tag: string | null, target: Target): void {
    const key = `${operator}#${tag ?? ""}`;
    const list = this.targets.get(key) ?? [];
    list.push(target);
    this.targets.set(key, list);
  }
}
