/**
 * The per-record diff of a what-if: the outputs of the base pipeline against those of the changed
 * one over the same input, matched first by where they came from (an output's lineage: its source
 * position, or its unit past a stage boundary; a bounded job's split), then within it by content,
 * then by Kafka key, then (outputs without a key, as many on both sides) in order. What stays
 * unmatched is added or removed; a pair that differs is changed, with a field-level diff. Pure.
 */
import { canonicalJson } from "../plan/hash.js";

/** One output record a what-if captured instead of writing it. */
export interface WhatifOutput {
  /** The topic it would have been written to (a sink's, or the dead-letter topic). */
  topic: string;
  key: string | null;
  /** The value, parsed when it is JSON. */
  value: unknown;
  /** Where it came from: the source position (`topic[partition]@offset`), or `unit <n>` past a stage boundary. */
  from: string;
}

/** One field that differs between a base and a changed output (`base` or `changed` absent: the field is not there). */
export interface FieldChange {
  /** JSON path of the field (`$` for the whole value). */
  path: string;
  base?: unknown;
  changed?: unknown;
}

/** One line of the diff. */
export type DiffEntry =
  | { kind: "added"; from: string; topic: string; key: string | null; value: unknown }
  | { kind: "removed"; from: string; topic: string; key: string | null; value: unknown }
  | { kind: "changed"; from: string; topic: string; key: string | null; base: unknown; changed: unknown; fields: FieldChange[] };

/** The diff, and how many outputs were the same. */
export interface OutputDiff {
  entries: DiffEntry[];
  same: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The fields that differ between `base` and `changed`, down to leaves (arrays of different length differ whole). */
export function fieldChanges(base: unknown, changed: unknown, path = "$"): FieldChange[] {
  if (canonicalJson(base) === canonicalJson(changed)) return [];
  if (isObject(base) && isObject(changed)) {
    const keys = [...new Set([...Object.keys(base), ...Object.keys(changed)])].sort();
    return keys.flatMap((k) => {
      const sub = `${path}.${k}`;
      if (!(k in changed)) return [{ path: sub, base: base[k] }];
      if (!(k in base)) return [{ path: sub, changed: changed[k] }];
      return fieldChanges(base[k], changed[k], sub);
    });
  }
  if (Array.isArray(base) && Array.isArray(changed) && base.length === changed.length) {
    return base.flatMap((b, i) => fieldChanges(b, changed[i], `${path}[${i}]`));
  }
  return [{ path, base, changed }];
}

/** Groups outputs by topic and origin, in first-seen order. */
function groupOf(outputs: readonly WhatifOutput[]): Map<string, WhatifOutput[]> {
  const groups = new Map<string, WhatifOutput[]>();
  for (const o of outputs) {
    const g = `${o.topic}\u0000${o.from}`;
    const list = groups.get(g) ?? [];
    list.push(o);
    groups.set(g, list);
  }
  return groups;
}

/** The diff of `changed` against `base`: per origin, equal contents pair first, then equal keys, then unkeyed outputs in order. */
export function diffOutputs(base: readonly WhatifOutput[], changed: readonly WhatifOutput[]): OutputDiff {
  const left = groupOf(base);
  const right = groupOf(changed);
  const entries: DiffEntry[] = [];
  let same = 0;
  const content = (o: WhatifOutput): string => canonicalJson([o.key, o.value]);
  for (const g of new Set([...left.keys(), ...right.keys()])) {
    const bs = [...(left.get(g) ?? [])];
    const cs = [...(right.get(g) ?? [])];
    // Equal contents first: an output that only moved within its origin's outputs is not a change.
    for (let i = 0; i < bs.length;) {
      const j = cs.findIndex((c) => content(c) === content(bs[i]!));
      if (j < 0) {
        i++;
        continue;
      }
      bs.splice(i, 1);
      cs.splice(j, 1);
      same++;
    }
    const change = (b: WhatifOutput, c: WhatifOutput): void => {
      const fields = b.key === c.key ? fieldChanges(b.value, c.value) : [{ path: "key", base: b.key, changed: c.key }, ...fieldChanges(b.value, c.value)];
      entries.push({ kind: "changed", from: b.from, topic: b.topic, key: c.key, base: b.value, changed: c.value, fields });
    };
    // Then by Kafka key: past a stage boundary the origin is a whole unit, whose outputs a key tells apart.
    for (let i = 0; i < bs.length;) {
      const j = bs[i]!.key === null ? -1 : cs.findIndex((c) => c.key === bs[i]!.key);
      if (j < 0) {
        i++;
        continue;
      }
      change(bs.splice(i, 1)[0]!, cs.splice(j, 1)[0]!);
    }
    // Outputs with the same origin and no key in common pair in order only when both have no key (else one was added, one removed),
    // and only when both sides have as many of them: with a different number (a changed filter over a whole unit or split), which
    // one became which cannot be told, so they are removed and added.
    const unkeyed = (o: WhatifOutput): boolean => o.key === null;
    if (bs.filter(unkeyed).length === cs.filter(unkeyed).length) {
      while (bs.some(unkeyed)) change(bs.splice(bs.findIndex(unkeyed), 1)[0]!, cs.splice(cs.findIndex(unkeyed), 1)[0]!);
    }
    for (const b of bs) entries.push({ kind: "removed", from: b.from, topic: b.topic, key: b.key, value: b.value });
    for (const c of cs) entries.push({ kind: "added", from: c.from, topic: c.topic, key: c.key, value: c.value });
  }
  return { entries, same };
}
