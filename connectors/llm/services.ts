/**
 * The LLM services of one worker: the model client and the vector indexes its operators open; the
 * built-in `llm` service of every worker (`activities/services.ts`).
 */
import type { Logger } from "pino";
import type { LlmServices, VectorIndex } from "../../core/api/llm.js";
import type { ServiceFactory } from "../../core/api/services.js";
import type { SageConfig } from "../../core/config/schema.js";
import { LanceVectorStore } from "../vector/vector-store.js";
import { EndpointModelClient } from "./model-endpoint.js";

/** LLM services plus what the worker needs to shut them down. */
export interface WorkerLlmServices extends LlmServices {
  readonly models: EndpointModelClient;
  close(): Promise<void>;
}

/** Creates the services (cheap: nothing connects until an operator calls). */
export function createLlmServices(config: SageConfig, dataDir: string, logger: Logger): WorkerLlmServices {
  const models = new EndpointModelClient(config.llm, dataDir, logger.child({ component: "llm" }));
  const vectors = new LanceVectorStore();
  return {
    models,
    openIndex: (path: string): Promise<VectorIndex> => vectors.index(path),
    close: () => vectors.close(),
  };
}

/** The built-in `llm` service: opened once per worker process (or stage thread) that uses it, closed at shutdown. */
export function llmService(logger: Logger): ServiceFactory<WorkerLlmServices> {
  return (ctx) => createLlmServices(ctx.config, ctx.dataDir, logger);
}
