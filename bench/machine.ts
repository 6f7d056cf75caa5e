/** What every benchmark prints about the machine and where it writes results. */
import { cpus, totalmem } from "node:os";
import { mkdirSync, writeFileSync } from "node:fs";
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
  const path = join(dir, `${new Date().toISOString().slice(0, 10)}-${name}.json`);
  writeFileSync(path, JSON.stringify({ machine: machineLine(), at: new Date().toISOString(), ...(data as object) }, null, 2) + "\n");
  return path;
}
