/**
 * The baselines of the bounded case that are not Temporal: the plain in-process TypeScript loop
 * (the limit) and SAGE itself (PyPI `isage` in the `.tools/sage` venv, run with its LocalEnvironment,
 * fed through `from_source` or `from_batch`).
 */
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../../dev/temporal-server.js";
import { readLines } from "../../connectors/file/line-reader.js";
import { enrich, keep, label, type ClickEvent } from "./events.js";

/** What a baseline run measured. */
export interface BaselineRun {
  in: number;
  out: number;
  seconds: number;
}

/** The same work as the pipeline in one plain loop: read, parse, map, map, filter, JSON lines out. */
export async function plainLoop(input: string, output: string): Promise<BaselineRun> {
  const t = performance.now();
  const sink = createWriteStream(output);
  let n = 0;
  let out = 0;
  for await (const lines of readLines(input, 0, Number.MAX_SAFE_INTEGER)) {
    const buf: string[] = [];
    for (const line of lines) {
      n++;
      const e = label(enrich(JSON.parse(line.text) as ClickEvent));
      if (keep(e)) {
        buf.push(JSON.stringify(e));
        out++;
      }
    }
    if (buf.length > 0 && !sink.write(buf.join("\n") + "\n")) await once(sink, "drain");
  }
  sink.end();
  await once(sink, "finish");
  return { in: n, out, seconds: (performance.now() - t) / 1000 };
}

/** The `isage` version the project installs (the one the package index served when this was written). */
export const ISAGE_VERSION = "0.3.2.4";
const SAGE_PYTHON = join(PACKAGE_ROOT, ".tools", "sage", "bin", "python");

/** The venv's python with `isage` importable, installing it with the project's script if needed; or why not. */
export function sagePython(log: (m: string) => void): { python: string } | { unavailable: string } {
  const importable = () => existsSync(SAGE_PYTHON) && spawnSync(SAGE_PYTHON, ["-c", "import sage.runtime"], { stdio: "ignore" }).status === 0;
  if (!importable()) {
    log(`installing isage ${ISAGE_VERSION} into .tools/sage (scripts/install-sage-baseline.sh)`);
    const r = spawnSync("bash", [join(PACKAGE_ROOT, "scripts", "install-sage-baseline.sh")], { encoding: "utf8", env: { ...process.env, ISAGE_VERSION } });
    if (r.status !== 0 || !importable()) {
      const why = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").pop() ?? "";
      return { unavailable: `isage ${ISAGE_VERSION} could not be installed (${why || `exit ${r.status}`})` };
    }
  }
  return { python: SAGE_PYTHON };
}

/**
 * How SAGE reads the input: `source` is `env.from_source(SourceFunction)`, its fastest form and the
 * peer; `batch` is `env.from_batch(BatchFunction)`, which takes SAGE's actor path and is much slower.
 */
export type SageSourceForm = "source" | "batch";

/** Runs the pipeline on SAGE's LocalEnvironment; its own timing (environment built to sink closed). */
export async function sageBaseline(python: string, input: string, output: string, form: SageSourceForm): Promise<BaselineRun | { unavailable: string }> {
  const script = join(PACKAGE_ROOT, "bench", "bounded", "sage_baseline.py");
  const child = spawn(python, [script, input, output, form], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  const last = stdout.trim().split("\n").pop() ?? "";
  if (code !== 0 || !last.startsWith("{")) {
    return { unavailable: `SAGE run failed (exit ${code}): ${stderr.trim().split("\n").slice(-2).join(" ")}` };
  }
  return JSON.parse(last) as BaselineRun;
}
