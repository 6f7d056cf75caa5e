/** The LLM services of one worker: the model client and the vector indexes its operators open. */
import type { Logger } from "pino";
import type { WorkerServices } from "../../core/api/context.js";
import { LLM_SERVICES, type LlmServices, type VectorIndex } from "../../core/api/llm.js";
import type { SageConfig } from "../../core/config/schema.js";
import { openLanceIndex } from "../vector/lance-index.js";
import { EndpointModelClient } from "./model-endpoint.js";

/** LLM services plus what the worker needs to shut them down. */
export interface WorkerLlmServices extends LlmServices {
  readonly models: EndpointModelClient;
  close(): Promise<void>;
}

/** Creates the services (cheap: nothing connects until an operator calls). */
export function createLlmServices(config: SageConfig, dataDir: string, logger: Logger): WorkerLlmServices {
  const models = new EndpointModelClient(config.llm, dataDir, logger.child({ component: "llm" }));
  const indexes = new Map<string, ReturnType<typeof openLanceIndex>>();
  return {
    models,
    openIndex(path: string): Promise<VectorIndex> {
      let index = indexes.get(path);
      if (!index) {
        index = openLanceIndex(path);
        indexes.set(path, index);
        index.catch(() => indexes.delete(path));
      }
      return index;
    },
    async close() {
      for (const index of indexes.values()) (await index.catch(() => null))?.close();
      indexes.clear();
    },
  };
}

/** The worker services map holding `llm`. */
export function workerServices(llm: LlmServices): WorkerServices {
  return { get: <T>(key: string) => (key === LLM_SERVICES ? (llm as T) : undefined) };
}
