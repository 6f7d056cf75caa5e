/**
 * The workflow bundle a worker runs: webpack'd from `workflows/index.ts` by the SDK, which costs a
 * couple of seconds of CPU per process. A bundle is kept on disk under a fingerprint of every
 * source file the workflows import (followed from `workflows/index.ts` by their relative imports),
 * the failure converter's file and the package lock, so processes started from the same code (a
 * test run's many workers, a restarted worker) reuse it, and any change to that code builds anew.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from "@temporalio/worker";

/** Relative module specifiers of a source text: `from "./x.js"`, `import "./x.js"`, `import("./x.js")`. */
const RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

/** The file a relative specifier names: `./x.js` is `./x.ts` in this TypeScript source tree. */
function sourceOf(fromFile: string, specifier: string): string | null {
  const target = resolve(dirname(fromFile), specifier);
  const candidates = [target, target.replace(/\.js$/, ".ts"), `${target}.ts`, join(target, "index.ts")];
  return candidates.find((c) => existsSync(c) && !c.endsWith("/")) ?? null;
}

/** The nearest package-lock.json above `dir`, or null. */
function lockFileAbove(dir: string): string | null {
  for (let d = dir; ; d = dirname(d)) {
    const lock = join(d, "package-lock.json");
    if (existsSync(lock)) return lock;
    if (dirname(d) === d) return null;
  }
}

/**
 * A fingerprint of what a bundle is built from: the entry's transitive relative imports (paths and
 * contents), the failure converter's file and the package lock (the SDK and every dependency).
 */
export function bundleFingerprint(workflowsPath: string, failureConverterPath?: string): string {
  const hash = createHash("sha256");
  const seen = new Set<string>();
  const pending = [workflowsPath, ...(failureConverterPath ? [failureConverterPath] : [])];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    hash.update(`${file}\0${text}\0`);
    for (const m of text.matchAll(RELATIVE_IMPORT)) {
      const next = sourceOf(file, m[1]!);
      if (next) pending.push(next);
    }
  }
  const lock = lockFileAbove(dirname(workflowsPath));
  hash.update(lock ? readFileSync(lock) : "no lock");
  return hash.digest("hex").slice(0, 32);
}

/** Where bundles are kept: one directory per user under the system's temporary directory. */
function cacheDir(): string {
  return join(tmpdir(), `sage-workflow-bundles-${userInfo().uid}`);
}

/**
 * The bundle of `workflowsPath` (with `failureConverterPath`, when set), read from the disk cache
 * when its fingerprint is there, otherwise built and stored (written whole, then renamed into place).
 */
export async function cachedWorkflowBundle(workflowsPath: string, failureConverterPath?: string): Promise<WorkflowBundleWithSourceMap> {
  const dir = cacheDir();
  const base = join(dir, bundleFingerprint(workflowsPath, failureConverterPath));
  if (existsSync(`${base}.js`) && existsSync(`${base}.map`)) {
    return { code: readFileSync(`${base}.js`, "utf8"), sourceMap: readFileSync(`${base}.map`, "utf8") };
  }
  const bundle = await bundleWorkflowCode({ workflowsPath, logger: new DefaultLogger("WARN"), ...(failureConverterPath ? { failureConverterPath } : {}) });
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${base}.${process.pid}.tmp`;
    writeFileSync(`${tmp}.map`, bundle.sourceMap);
    renameSync(`${tmp}.map`, `${base}.map`);
    writeFileSync(`${tmp}.js`, bundle.code);
    renameSync(`${tmp}.js`, `${base}.js`);
  } catch {
    // A cache that cannot be written only costs the next process its own build.
  }
  return bundle;
}
