/** `definePipeline`: the unit a module exports, compiled the same way by client and worker. */
import { PipelineDefinitionError } from "../errors.js";
import { GraphBuilder } from "../plan/builder.js";
import type { LogicalGraph } from "../plan/logical.js";
import { checkStreamingGraph, checkStreamingPlan } from "../plan/stream.js";
import { optimize, type CompileOptions, type PhysicalPlan } from "../plan/physical.js";
import { StreamExecutionEnvironment } from "./environment.js";
import type { ServiceFactory } from "./services.js";
import { NAME_CHARS, isName } from "../names.js";

/** A pipeline compiled for one set of options: the plan plus the user functions by operator id. */
export interface CompiledPipeline {
  readonly graph: LogicalGraph;
  readonly plan: PhysicalPlan;
  readonly functions: ReadonlyMap<string, unknown>;
  /** The services the pipeline registered (`env.registerService`), by name; not part of the plan. */
  readonly services: ReadonlyMap<string, ServiceFactory<unknown>>;
}

/** A named pipeline definition. */
export interface Pipeline {
  /** Marker that lets loaders recognise a pipeline among a module's exports. */
  readonly kind: "sage.pipeline";
  readonly name: string;
  /** Runs the build function and optimizes the graph. Deterministic: same module, same plan. */
  compile(options?: Partial<CompileOptions>): CompiledPipeline;
}

/** Default compile options. */
export const DEFAULT_COMPILE_OPTIONS: CompileOptions = { parallelism: 1, fusion: true };

/** Declares a pipeline; `build` receives the environment and declares sources, operators and sinks. */
export function definePipeline(name: string, build: (env: StreamExecutionEnvironment) => unknown): Pipeline {
  if (!isName(name)) {
    throw new PipelineDefinitionError(`pipeline name "${name}" must match ${NAME_CHARS} (it becomes part of workflow ids)`);
  }
  return {
    kind: "sage.pipeline",
    name,
    compile(options = {}) {
      const builder = new GraphBuilder(name);
      const env = new StreamExecutionEnvironment(builder);
      build(env);
      const { graph, functions } = builder.finish();
      checkStreamingGraph(graph);
      const plan = optimize(graph, { ...DEFAULT_COMPILE_OPTIONS, ...options });
      checkStreamingPlan(plan);
      return { graph, plan, functions, services: env.services };
    },
  };
}

/** True when `value` is a pipeline made by `definePipeline`. */
export function isPipeline(value: unknown): value is Pipeline {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "sage.pipeline";
}
