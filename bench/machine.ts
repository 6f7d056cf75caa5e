/** What every benchmark prints about the machine and where it writes results. */
import { cpus, totalmem } from "node:os";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One-line description of this machine. */
export function machineLine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model.trim() ?? "unknown"}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB, Node ${process.version}`;
}

/** Prints an aligned table. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log(fmt(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) console.log(fmt(r));
}

/** Writes `bench/results/<date>-<name>.json`. */
export function saveResult(name: string, data: unknown): string {
  const dir = join("bench", "results");
  mkdirSync(dir, { recursive: true });
  // A run's file is never overwritten (bench/RESULTS.md cites them): a second run of the day gets -2, -3, ...
  const day = `${new Date().toISOString().slice(0, 10)}-${name}`;
  let path = join(dir, `${day}.json`);
  for (let n = 2; existsSync(path); n++) path = join(dir, `${day}-${n}.json`);
  writeFileSync(path, JSON.stringify({ machine: machineLine(), at: new Date().toISOString(), ...(data as object) }, null, 2) + "\n");
  return path;
}
