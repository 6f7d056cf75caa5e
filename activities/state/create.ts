/**
 * Makes the keyed operator a plan node describes (`LogicalNode.keyed`): rolling reduce or
 * aggregate, keyed process, time or count windows with reduce, aggregate or process, a window join
 * or an interval join, over a state backend and a processing-time clock.
 */
import type { LogicalNode } from "../../core/plan/logical.js";
import type { WindowSpec } from "../../core/api/windows.js";
import { PipelineDefinitionError } from "../../core/errors.js";
import type { StateBackend } from "./backend.js";
import { CountWindowOperator } from "./count-window-operator.js";
import { IntervalJoinOperator } from "./interval-join.js";
import type { KeyedOperator } from "./keyed-operator.js";
import { KeyedProcessOperator } from "./keyed-process.js";
import { LineagedContents, type InputLineage } from "./input-lineage.js";
import { RollingOperator } from "./rolling.js";
import {
  AggregateContents,
  aggregateEvaluator,
  joinEvaluator,
  ListContents,
  processEvaluator,
  ReduceContents,
  reduceEvaluator,
  type ListEvaluator,
  type WindowContents,
} from "./window-contents.js";
import { TimeWindowOperator } from "./window-operator.js";
import { aggregateOf, intervalJoinOf, joinOf, keyedProcessOf, processWindowOf, reduceOf, windowResultOf } from "./user-functions.js";

/** The user functions of a keyed node: `main` as registered, `result` when `keyed.withResultFn`. */
export interface KeyedFunctions {
  main: unknown;
  result?: unknown;
}

/**
 * The keyed operator of `node`, keeping its state in `backend` (one backend per operator instance:
 * entry keys do not name the operator); `clock` is the processing-time clock (ms), read for
 * processing-time windows and timers and for state TTL. The operator keeps only the watermark and
 * its late counters in memory: after `backend.discardUnit()` or a `restore`, make a new operator
 * and advance it from the checkpoint's watermark. The runner calls `open`/`close` of the functions.
 * With `lineage` (streaming, lineage on), the operator keeps the summary of each output's inputs
 * beside its state and names it with the output; a sliding count window, which evicts, names none.
 */
export function createKeyedOperator(
  node: LogicalNode,
  fns: KeyedFunctions,
  backend: StateBackend,
  clock: () => number,
  lineage: InputLineage | null = null,
): KeyedOperator {
  const keyed = node.keyed;
  const op = node.id;
  if (keyed === undefined) throw new PipelineDefinitionError(`operator "${op}" is not a keyed operator`);
  switch (keyed.op) {
    case "reduce":
      return RollingOperator.reduce(backend, reduceOf(fns.main, op), lineage);
    case "aggregate":
      return RollingOperator.aggregate(backend, aggregateOf(fns.main, op), lineage);
    case "process":
      return new KeyedProcessOperator(keyedProcessOf(fns.main, op), backend, clock, lineage);
    case "intervalJoin":
      return new IntervalJoinOperator(op, keyed.lowerMs, keyed.upperMs, intervalJoinOf(fns.main, op), backend, lineage);
    case "windowJoin": {
      const contents = new ListContents(backend, joinEvaluator(joinOf(fns.main, op)), true);
      const named = lineage ? new LineagedContents(contents, lineage, keyed.window.kind === "count") : contents;
      return windowOperator(op, keyed.window, 0, null, named, backend, clock, lineage);
    }
    case "window": {
      const result = keyed.withResultFn ? windowResultOf(fns.result, op) : undefined;
      const evicting = keyed.window.kind === "count" && keyed.window.slide !== keyed.window.size;
      let contents: WindowContents;
      if (keyed.apply === "process" || evicting) {
        const evaluate: ListEvaluator =
          keyed.apply === "process"
            ? processEvaluator(processWindowOf(fns.main, op))
            : keyed.apply === "reduce"
              ? reduceEvaluator(reduceOf(fns.main, op), result)
              : aggregateEvaluator(aggregateOf(fns.main, op), result);
        contents = new ListContents(backend, evaluate, false);
      } else if (keyed.apply === "reduce") contents = new ReduceContents(backend, reduceOf(fns.main, op), result);
      else contents = new AggregateContents(backend, aggregateOf(fns.main, op), result);
      if (lineage && !evicting) contents = new LineagedContents(contents, lineage, keyed.window.kind === "count");
      return windowOperator(op, keyed.window, keyed.allowedLatenessMs, keyed.lateTag, contents, backend, clock, lineage);
    }
  }
}

function windowOperator(
  operator: string,
  spec: WindowSpec,
  allowedLatenessMs: number,
  lateTag: string | null,
  contents: WindowContents,
  backend: StateBackend,
  clock: () => number,
  lineage: InputLineage | null,
): KeyedOperator {
  if (spec.kind === "count") return new CountWindowOperator(spec.size, spec.slide, contents, backend);
  return new TimeWindowOperator({ operator, spec, allowedLatenessMs, lateTag }, contents, backend, clock, lineage);
}
