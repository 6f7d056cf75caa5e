/**
 * The model calls a stage unit makes, for its lineage: the stage runner runs a unit inside a call
 * trail, and the model client notes each answered call (model, request hash, cache key) in the
 * trail of the unit it runs for. Async-local, so concurrent units of one worker keep theirs apart.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** One answered model call as the client sees it. */
export interface TrailCall {
  operator: string;
  /** The model that answered. */
  model: string;
  /** The hash of the request the operator made. */
  request: string;
  /** The key the cached response is stored under (another model's request when downgraded). */
  key: string;
}

/** Where a unit's model calls are noted. */
export interface CallTrail {
  note(call: TrailCall): void;
}

const trails = new AsyncLocalStorage<CallTrail>();

/** Runs `work` with `trail` noting the model calls made inside it. */
export function withCallTrail<T>(trail: CallTrail, work: () => Promise<T>): Promise<T> {
  return trails.run(trail, work);
}

/** Notes an answered call in the trail of the unit it was made for (none outside a unit). */
export function noteCall(call: TrailCall): void {
  trails.getStore()?.note(call);
}
