/**
 * How much a worker process runs at once: its activity slots and its stage threads, each from
 * the configuration or, unset, from the machine's cores (`os.availableParallelism()`).
 */
import { availableParallelism } from "node:os";
import type { SageConfig } from "../core/config/schema.js";

/** A worker process's concurrency, resolved. */
export interface WorkerSlots {
  /** Activities one worker process runs at once. */
  activities: number;
  /** Stage threads (0: off, every stage runs on the main thread). */
  threads: number;
}

/** The worker's slots: configured values, else one per core; a configured 1 thread means off (0). */
export function workerSlotsOf(config: SageConfig, cores: number = availableParallelism()): WorkerSlots {
  const threads = config.worker.threads ?? cores;
  return { activities: config.worker["max-concurrent-activities"] ?? Math.max(1, cores), threads: threads <= 1 ? 0 : threads };
}
