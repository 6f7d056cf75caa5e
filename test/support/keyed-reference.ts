/**
 * A plain reference of the keyed test pipeline (`test/fixtures/keyed-pipeline.ts`): the input read
 * once, in order, with the watermark before each record taken as the largest earlier timestamp
 * minus the bound minus 1, and each branch computed the obvious way. Also the test input.
 */
import assert from "node:assert/strict";
import { BOUND_MS, LATENESS_MS, type Ev } from "../fixtures/keyed-pipeline.js";

/** The key of the last record, whose timestamp an hour on fires every window of the others. */
export const FLUSH_KEY = "zz";

/** `n` records over 5 keys, ~100 ms apart, some out of order within the bound and some late beyond it; then the flush record. */
export function keyedInput(n: number, seed = 11): Ev[] {
  const out: Ev[] = [];
  let t = Date.UTC(2026, 0, 1);
  let s = seed;
  const rand = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let id = 0; id < n; id++) {
    t += Math.floor(rand() * 200);
    const r = rand();
    // 1 in 12 records is up to 1.9 s out of order (within the bound); 1 in 30 is 2-6 s behind (late).
    const ts = r < 1 / 12 ? t - Math.floor(rand() * 1_900) : r < 1 / 12 + 1 / 30 ? t - 2_000 - Math.floor(rand() * 4_000) : t;
    out.push({ id, k: "abcde"[Math.floor(rand() * 5)]!, ts, v: 1 + Math.floor(rand() * 9) });
  }
  out.push({ id: n, k: FLUSH_KEY, ts: t + 3_600_000, v: 0 });
  return out;
}

/** What each branch should write, as JSON strings (compare sorted: firing order is not part of the contract). */
export function keyedReference(input: readonly Ev[]): Record<string, string[]> {
  const out: Record<string, unknown[]> = { tumbling: [], late: [], sliding: [], session: [], count: [], rolling: [], process: [] };
  let max = -Infinity;
  let wm = -Infinity;
  const tumbling = new Map<string, { k: string; start: number; end: number; n: number; sum: number; fired: boolean }>();
  const sliding = new Map<string, { k: string; start: number; end: number; sum: number }>();
  const sessions = new Map<string, Array<{ start: number; end: number; ids: number[] }>>();
  const counts = new Map<string, Ev[]>();
  const rolling = new Map<string, Ev>();
  const perKey = new Map<string, number>();
  const timers = new Map<string, { k: string; at: number }>();
  const emitTumbling = (w: { k: string; start: number; end: number; n: number; sum: number }): void =>
    void out.tumbling!.push({ k: w.k, start: w.start, end: w.end, n: w.n, sum: w.sum });
  const advance = (to: number): void => {
    if (to <= wm) return;
    wm = to;
    for (const w of tumbling.values()) {
      if (!w.fired && w.end - 1 <= wm) {
        w.fired = true;
        emitTumbling(w);
      }
    }
    for (const [id, w] of tumbling) if (w.end - 1 + LATENESS_MS <= wm) tumbling.delete(id);
    for (const [id, w] of sliding) {
      if (w.end - 1 > wm) continue;
      out.sliding!.push(w);
      sliding.delete(id);
    }
    for (const [k, list] of sessions) {
      for (const s of list.filter((x) => x.end - 1 <= wm)) out.session!.push({ k, start: s.start, end: s.end, ids: [...s.ids].sort((a, b) => a - b) });
      sessions.set(
        k,
        list.filter((x) => x.end - 1 > wm),
      );
    }
    for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > wm) continue;
      out.process!.push({ k: t.k, at: t.at, count: perKey.get(t.k) ?? 0 });
      timers.delete(id);
    }
  };
  for (const e of input) {
    advance(max - BOUND_MS - 1);
    max = Math.max(max, e.ts);
    // Tumbling 10 s, lateness 1 s, late records to the side output; a late-but-allowed record fires its window again.
    const start = e.ts - (e.ts % 10_000);
    if (start + 10_000 - 1 + LATENESS_MS <= wm) out.late!.push(e);
    else {
      const id = `${e.k}@${start}`;
      const w = tumbling.get(id) ?? { k: e.k, start, end: start + 10_000, n: 0, sum: 0, fired: false };
      w.n++;
      w.sum += e.v;
      tumbling.set(id, w);
      if (w.fired) emitTumbling(w);
    }
    // Sliding 30 s every 10 s, no lateness: windows already due are skipped.
    for (let s = start - 20_000; s <= start; s += 10_000) {
      if (s + 30_000 - 1 <= wm) continue;
      const id = `${e.k}@${s}`;
      const w = sliding.get(id) ?? { k: e.k, start: s, end: s + 30_000, sum: 0 };
      w.sum += e.v;
      sliding.set(id, w);
    }
    // Sessions with a 5 s gap: a record's own window [ts, ts + 5 s) merges with every open session it overlaps.
    if (e.ts + 5_000 - 1 > wm) {
      const list = sessions.get(e.k) ?? [];
      let merged = { start: e.ts, end: e.ts + 5_000, ids: [e.id] };
      const keep = list.filter((s) => {
        if (s.start < merged.end && merged.start < s.end) {
          merged = { start: Math.min(s.start, merged.start), end: Math.max(s.end, merged.end), ids: [...s.ids, ...merged.ids] };
          return false;
        }
        return true;
      });
      sessions.set(e.k, [...keep, merged]);
    }
    // Count windows of 3, whatever the time.
    const c = [...(counts.get(e.k) ?? []), e];
    if (c.length === 3) {
      out.count!.push({ k: e.k, n: 3, sum: c.reduce((a, x) => a + x.v, 0) });
      counts.set(e.k, []);
    } else counts.set(e.k, c);
    // Rolling reduce.
    const prev = rolling.get(e.k);
    const next = prev ? { ...e, v: prev.v + e.v } : e;
    rolling.set(e.k, next);
    out.rolling!.push(next);
    // Keyed process: a count, and a timer 5 s after each record.
    perKey.set(e.k, (perKey.get(e.k) ?? 0) + 1);
    timers.set(`${e.k}@${e.ts + 5_000}`, { k: e.k, at: e.ts + 5_000 });
  }
  // The end of a bounded input (or, streaming, the flush record's watermark) fires what is left.
  advance(Infinity);
  return Object.fromEntries(Object.entries(out).map(([branch, rows]) => [branch, normalized(rows)]));
}

/** Rows of a branch as sorted JSON strings, the flush key left out. */
export function normalized(rows: readonly unknown[]): string[] {
  return rows
    .filter((r) => (r as { k?: string }).k !== FLUSH_KEY)
    .map((r) => JSON.stringify(r))
    .sort();
}

/** Reads every branch's topic (read_committed) until each has at least the reference's rows; then the rows. */
export async function readBranches(
  read: (branch: string) => Promise<unknown[]>,
  expected: Record<string, string[]>,
  until: <T>(what: string, probe: () => Promise<T | undefined>, guardMs?: number) => Promise<T>,
): Promise<Record<string, unknown[]>> {
  let short = "";
  try {
    return await until(
      "every branch's windows committed",
      async () => {
        const rows: Record<string, unknown[]> = {};
        for (const [branch, want] of Object.entries(expected)) {
          rows[branch] = await read(branch);
          const got = normalized(rows[branch]);
          if (got.length < want.length) {
            const missing = want.filter((r) => !got.includes(r));
            short = `branch ${branch}: ${got.length} of ${want.length} rows; missing e.g. ${missing.slice(0, 3).join(" ")}`;
            return undefined;
          }
        }
        return rows;
      },
      240_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (${short})`);
  }
}

/** Each branch's rows (flush key left out, sorted) against the reference's, naming what is missing or extra. */
export function assertBranches(actual: Record<string, unknown[]>, expected: Record<string, string[]>, branches: readonly string[]): void {
  for (const branch of branches) {
    const got = normalized(actual[branch] ?? []);
    const want = expected[branch]!;
    const missing = want.filter((r) => !got.includes(r));
    const extra = got.filter((r) => !want.includes(r));
    assert.deepEqual(
      got,
      want,
      `branch ${branch}: ${got.length} rows, reference ${want.length}; missing ${missing.slice(0, 3).join(" ")}; extra ${extra.slice(0, 3).join(" ")}`,
    );
  }
}
