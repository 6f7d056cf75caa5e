/**
 * What a chaos run measured, from the ids alone: records lost and duplicated (each id's count read
 * back against its count in the input) and how long committed output stalled around the fault.
 */

/** Exactly-once accounting of one run. */
export interface Tally {
  /** Records in the input (counting any id the input holds twice as two). */
  recordsIn: number;
  /** Records read back from the committed output. */
  readBack: number;
  /** Input records with no committed output record. */
  lost: number;
  /** Committed output records beyond each input record's one. */
  duplicated: number;
  /** Output records whose id the input never held. */
  unexpected: number;
  sampleLost: number[];
  sampleDuplicated: number[];
}

function counts(ids: Iterable<number>): Map<number, number> {
  const m = new Map<number, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** Compares the ids read back with the ids of the input, record by record. */
export function tally(input: Iterable<number>, output: Iterable<number>): Tally {
  const want = counts(input);
  const got = counts(output);
  const t: Tally = { recordsIn: 0, readBack: 0, lost: 0, duplicated: 0, unexpected: 0, sampleLost: [], sampleDuplicated: [] };
  for (const [id, n] of want) {
    t.recordsIn += n;
    const m = got.get(id) ?? 0;
    if (m < n) {
      t.lost += n - m;
      if (t.sampleLost.length < 5) t.sampleLost.push(id);
    }
  }
  for (const [id, m] of got) {
    t.readBack += m;
    const n = want.get(id) ?? 0;
    if (n === 0) t.unexpected += m;
    else if (m > n) {
      t.duplicated += m - n;
      if (t.sampleDuplicated.length < 5) t.sampleDuplicated.push(id);
    }
  }
  return t;
}

/** The longest gap between committed outputs before a fault and from it on. */
export interface Stall {
  /** Longest gap (s) between consecutive new output records that ends after the fault began (or, with no output after it, up to the end). */
  stallSeconds: number;
  /** Longest such gap before the fault, for comparison (the job's own rhythm under no fault). */
  gapBeforeSeconds: number;
  /** Seconds from the fault's start to the first output record after it (null: none came). */
  firstOutputAfterSeconds: number | null;
}

/** Stall of a run from the arrival times (ms, any order) of its new output records, the fault's start and the end of watching. */
export function stallAround(arrivals: readonly number[], faultAt: number, endAt: number): Stall {
  const times = [...arrivals].sort((a, b) => a - b);
  let before = 0;
  let stall = 0;
  let prev: number | null = null;
  let firstAfter: number | null = null;
  for (const t of times) {
    if (t >= faultAt && firstAfter === null) firstAfter = t;
    if (prev !== null) {
      const gap = t - prev;
      if (t >= faultAt) stall = Math.max(stall, gap);
      else before = Math.max(before, gap);
    }
    prev = t;
  }
  // Nothing came after the fault: the output stalled from the last record (or the fault) to the end.
  if (firstAfter === null) stall = Math.max(stall, endAt - (prev ?? faultAt));
  return {
    stallSeconds: stall / 1000,
    gapBeforeSeconds: before / 1000,
    firstOutputAfterSeconds: firstAfter === null ? null : (firstAfter - faultAt) / 1000,
  };
}
