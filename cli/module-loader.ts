/** Loads a pipeline module by path and finds the pipeline it exports. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isPipeline, type Pipeline } from "../core/api/pipeline.js";
import { PipelineDefinitionError } from "../core/errors.js";

/** Imports `modulePath` and returns its pipeline (the default export, or the only exported pipeline). */
export async function loadPipeline(modulePath: string, name?: string): Promise<Pipeline> {
  const path = resolve(modulePath);
  if (!existsSync(path)) throw new PipelineDefinitionError(`pipeline module "${path}" does not exist`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof PipelineDefinitionError) throw new PipelineDefinitionError(`${path}: ${err.message}`);
    throw new PipelineDefinitionError(`cannot load pipeline module "${path}": ${(err as Error).message}`);
  }
  const found = Object.entries(mod).filter(([, v]) => isPipeline(v)) as Array<[string, Pipeline]>;
  const unique = [...new Map(found.map(([k, p]) => [p, k])).entries()];
  if (name) {
    const hit = unique.find(([p]) => p.name === name);
    if (!hit)
      throw new PipelineDefinitionError(
        `module "${path}" exports no pipeline named "${name}" (it exports: ${unique.map(([p]) => p.name).join(", ") || "none"})`,
      );
    return hit[0];
  }
  const def = mod.default;
  if (isPipeline(def)) return def;
  if (unique.length === 1) return unique[0]![0];
  if (unique.length === 0) {
    throw new PipelineDefinitionError(
      `module "${path}" exports no pipeline: export one made with definePipeline(...), e.g. \`export default definePipeline("name", (env) => ...)\``,
    );
  }
  throw new PipelineDefinitionError(
    `module "${path}" exports several pipelines (${unique.map(([p]) => p.name).join(", ")}); choose one with --pipeline <name>`,
  );
}
