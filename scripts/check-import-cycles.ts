/**
 * Fails when relative imports form a cycle (type-only imports included: a cycle of types is still a
 * tangle). Run by `npm run lint`. Prints each cycle as a chain of files.
 */
import { readdirSync, readFileSync, statSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOTS = [
  "index.ts",
  "core",
  "workflows",
  "activities",
  "worker",
  "client",
  "cli",
  "dev",
  "streaming",
  "replay",
  "connectors",
  "monitoring",
  "bench",
  "scripts",
];
const IMPORT = /(?:import|export)\s[^'"]*?from\s+["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

function files(path: string): string[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isDirectory()) return readdirSync(path).flatMap((e) => files(join(path, e)));
  return path.endsWith(".ts") ? [resolve(path)] : [];
}

function target(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec);
  for (const candidate of [base.replace(/\.js$/, ".ts"), `${base}.ts`, join(base, "index.ts")]) if (existsSync(candidate)) return candidate;
  return null;
}

const graph = new Map<string, string[]>();
for (const file of ROOTS.flatMap(files)) {
  const text = readFileSync(file, "utf8");
  const deps: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const t = target(file, (m[1] ?? m[2])!);
    if (t) deps.push(t);
  }
  graph.set(file, deps);
}

const cycles: string[][] = [];
const state = new Map<string, "visiting" | "done">();
const stack: string[] = [];
function visit(node: string): void {
  state.set(node, "visiting");
  stack.push(node);
  for (const dep of graph.get(node) ?? []) {
    if (state.get(dep) === "visiting") cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
    else if (!state.has(dep)) visit(dep);
  }
  stack.pop();
  state.set(node, "done");
}
for (const node of graph.keys()) if (!state.has(node)) visit(node);

if (cycles.length > 0) {
  for (const c of cycles) console.error(`import cycle: ${c.map((f) => relative(process.cwd(), f)).join(" -> ")}`);
  process.exit(1);
}
console.log(`no import cycles among ${graph.size} modules`);
