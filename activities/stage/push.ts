/**
 * How a record moves through a stage: a `Push` hands it to the next operator, and an output hands
 * it on along the chain's edges (after Flink's `ChainingOutput`). Records are counted here, where
 * they cross an edge, and nowhere else: out of the operator that emits, into each that receives.
 */
import type { OperatorCounts } from "../../core/plan/job.js";

/** Pushes one record into an operator; returns a promise only when something awaited. */
export type Push = (value: unknown) => void | Promise<void>;

/** Where an output goes: a push, and the counts of the operator behind it (null: an edge out of the stage). */
export interface Target {
  push: Push;
  counts: OperatorCounts | null;
}

/** Pushes `items[from..]` through `push`, staying synchronous until a push returns a promise. */
export function pushAll(items: readonly unknown[], push: Push, from = 0): void | Promise<void> {
  for (let i = from; i < items.length; i++) {
    const p = push(items[i]);
    if (p) return p.then(() => pushAll(items, push, i + 1));
  }
}

/** Hands `value` to `targets[from..]`, counting it into each, synchronous until a push awaits. */
function fanOut(targets: readonly Target[], value: unknown, from: number): void | Promise<void> {
  for (let i = from; i < targets.length; i++) {
    const t = targets[i]!;
    if (t.counts) t.counts.in++;
    const p = t.push(value);
    if (p) return p.then(() => fanOut(targets, value, i + 1));
  }
}

/**
 * The output of an operator (`from`; null for the entry of a stage) to `targets`: counts each record
 * out of `from` and into each target. Built once per edge; the common one-target case is one call.
 */
export function outputOf(from: OperatorCounts | null, targets: readonly Target[]): Push {
  if (targets.length === 1) {
    const { push, counts } = targets[0]!;
    if (from && counts) {
      return (v) => {
        from.out++;
        counts.in++;
        return push(v);
      };
    }
    if (counts) {
      return (v) => {
        counts.in++;
        return push(v);
      };
    }
    if (from) {
      return (v) => {
        from.out++;
        return push(v);
      };
    }
    return push;
  }
  const list = [...targets];
  if (!from) return (v) => fanOut(list, v, 0);
  return (v) => {
    from.out++;
    return fanOut(list, v, 0);
  };
}
