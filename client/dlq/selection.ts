/**
 * Which dead letters a `sage dlq` command means, and how they are summed up: the filter (operator,
 * error text), groups by operator and error pattern (the error with its numbers and quoted values
 * taken out, so "record 7 is poison" and "record 9 is poison" are one group), and the id a redrive
 * gets from what it selects.
 */
import { canonicalJson, sha256Hex } from "../../core/plan/hash.js";
import { totalAttempts, type DeadLetter } from "./letters.js";

/** What `--operator` and `--error` select. */
export interface LetterFilter {
  /** Operator id (exact). */
  operator?: string;
  /** A substring of the error, case-insensitive. */
  error?: string;
}

/** True when `letter` passes `filter`. */
export function matches(letter: Pick<DeadLetter, "operator" | "error">, filter: LetterFilter): boolean {
  if (filter.operator !== undefined && letter.operator !== filter.operator) return false;
  if (filter.error !== undefined && !letter.error.toLowerCase().includes(filter.error.toLowerCase())) return false;
  return true;
}

/** The error with what varies per record taken out: quoted text, UUIDs, hex ids and numbers. */
export function errorPattern(error: string): string {
  return error
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/'(?:[^'\\]|\\.)*'/g, "'…'")
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, "#")
    .replace(/\b0x[0-9a-f]+\b/gi, "#")
    .replace(/\d+(?:\.\d+)?/g, "#");
}

/** Dead letters of one operator with one error pattern. */
export interface LetterGroup {
  operator: string;
  /** The error pattern (`errorPattern`). */
  error: string;
  /** One full error of the group. */
  sample: string;
  count: number;
  /** Earliest and latest time a letter of the group was written (null when none says). */
  first: string | null;
  last: string | null;
  /** Letters of the group that failed before, in an earlier run or redrive. */
  failedBefore: number;
  /** Most tries any record of the group had, over all its failures. */
  maxAttempts: number;
}

/** Groups `letters` by operator and error pattern, the largest group first. */
export function groupLetters(letters: readonly DeadLetter[]): LetterGroup[] {
  const groups = new Map<string, LetterGroup>();
  for (const l of letters) {
    const error = errorPattern(l.error);
    const key = `${l.operator}\u0000${error}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { operator: l.operator, error, sample: l.error, count: 0, first: null, last: null, failedBefore: 0, maxAttempts: 0 }));
    g.count++;
    if (l.at !== null) {
      if (g.first === null || l.at < g.first) g.first = l.at;
      if (g.last === null || l.at > g.last) g.last = l.at;
    }
    if (l.history.length > 0) g.failedBefore++;
    g.maxAttempts = Math.max(g.maxAttempts, totalAttempts(l));
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.operator.localeCompare(b.operator) || a.error.localeCompare(b.error));
}

/**
 * The default id of a redrive: the same job, filter and target give the same id, so a redrive run
 * again after an interruption resumes the one it started instead of sending its records again.
 */
export function redriveIdOf(job: string, filter: LetterFilter, target: string): string {
  const hash = sha256Hex(canonicalJson({ job, operator: filter.operator ?? null, error: filter.error ?? null, target }));
  return `r-${hash.slice(0, 10)}`;
}
