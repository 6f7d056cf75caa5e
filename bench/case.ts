/**
 * What a benchmark case is to the runner (`bench/run.ts`): a name, a `run` that measures the case
 * against its baselines in the same run, and the report it hands back (table, chart bars, checks).
 */
import type { DevServer } from "../dev/temporal-server.js";

/** Sizes a case runs at: `full` for `npm run bench`, `smoke` for CI (a few seconds, figures not asserted). */
export type BenchSize = "full" | "smoke";

/** What the runner gives a case. */
export interface BenchContext {
  readonly size: BenchSize;
  /** A scratch directory removed at the end of the run. */
  readonly dir: string;
  /** The run's Temporal dev server, started on first use (one per run, like `npm test`). */
  server(): Promise<DevServer>;
  /** `--records N` from the command line, if given. */
  readonly records: number | undefined;
  /** Runs `make` once per key and run: cases share measurements (history reuses the bounded job). */
  shared<T>(key: string, make: () => Promise<T>): Promise<T>;
  /** Prints a progress line (to stderr, so tables stay clean on stdout). */
  readonly log: (message: string) => void;
}

/** One bar of a case's chart. */
export interface ChartBar {
  label: string;
  /** `null` when the measurement could not be made (the chart says so instead of drawing a bar). */
  value: number | null;
  /** Durable (Temporal-backed) rows are drawn in another colour than the baselines. */
  durable: boolean;
}

/** A check the smoke run asserts: never a time threshold, only that things ran and arrived. */
export interface BenchCheck {
  what: string;
  ok: boolean;
}

/** What a case returns. */
export interface CaseReport {
  title: string;
  /** Table header and rows, already formatted. */
  columns: string[];
  rows: string[][];
  /** Bar chart of the case's main figure (none: no SVG is written). */
  chart?: { unit: string; bars: ChartBar[] };
  checks: BenchCheck[];
  /** Lines printed under the table (targets met or not, what the bottleneck is, what was unavailable). */
  notes: string[];
  /** Raw figures for `bench/results/<date>-<case>.json` (none: the case saves its own, or nothing). */
  data?: unknown;
}

/** A benchmark case in the registry. */
export interface BenchCase {
  name: string;
  /** One line for `npm run bench -- --list`. */
  summary: string;
  /** Part of `npm run bench` with no names (a soak, say, runs only when named). */
  inDefaultRun: boolean;
  /** Part of `npm run bench -- smoke`. */
  inSmoke: boolean;
  run(ctx: BenchContext): Promise<CaseReport>;
}

/** Formats a rate: 123,456. */
export function perSecond(n: number, seconds: number): string {
  return Math.round(n / seconds).toLocaleString("en-US");
}

/** Formats a ratio: 1.23x. */
export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "-";
  const r = a / b;
  return `${r >= 100 ? Math.round(r).toLocaleString("en-US") : r.toFixed(2)}x`;
}
