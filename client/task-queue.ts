/** The task queue of a pipeline: configured, else `sage-<pipeline>`. */
import type { SageConfig } from "../core/config/schema.js";

/** Task queue a pipeline's jobs and workers use. */
export function taskQueueOf(pipeline: string, config: SageConfig): string {
  return config.temporal["task-queue"] ?? `sage-${pipeline}`;
}
