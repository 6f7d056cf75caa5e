/** Workflows of `bench/temporal-cycle.ts`: Temporal's own cost per activity on this machine, with nothing of Sage in them. */
import { condition, defineSignal, proxyActivities, proxyLocalActivities, setHandler, sleep } from "@temporalio/workflow";

interface CycleActivities {
  /** Waits `ms` (as a Kafka transaction would) and returns. */
  work(ms: number, payloads: Uint8Array[]): Promise<number>;
}
const local = proxyLocalActivities<CycleActivities>({ startToCloseTimeout: "10s" });
const remote = proxyActivities<CycleActivities>({ startToCloseTimeout: "10s" });

/** `n` local activities one after another. */
export async function sequentialLocal(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await local.work(0, []);
  return n;
}

/** `n` activities one after another. */
export async function sequentialRemote(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await remote.work(0, []);
  return n;
}

/** `n` durable timers of 1 ms one after another: what the partition workflow's timer before a checkpoint's close costs. */
export async function sequentialTimers(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await sleep(1);
  return n;
}

export const cycleBatch = defineSignal<[Uint8Array]>("cycleBatch");
export const cycleStop = defineSignal("cycleStop");

/** `depth` nested async calls: the promises a unit's workflow code creates on its way to the activity. */
async function nested(depth: number): Promise<void> {
  if (depth > 0) await nested(depth - 1);
}

/** `n` awaited async calls in one workflow task, no activity: what the SDK's hook costs per workflow-side promise. */
export async function promisesOnly(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await nested(1);
  return n;
}

/**
 * The partition workflow's shape without Sage: batches by signal, all pending ones run by one local
 * activity of `ms`, until stopped; each unit first awaits `promises` nested async calls.
 */
export async function signalledLocal(ms: number, promises = 0): Promise<number> {
  let pending: Uint8Array[] = [];
  let stopping = false;
  let units = 0;
  setHandler(cycleBatch, (records) => void pending.push(records));
  setHandler(cycleStop, () => void (stopping = true));
  for (;;) {
    await condition(() => pending.length > 0 || stopping);
    if (pending.length === 0) return units;
    const take = pending;
    pending = [];
    await nested(promises);
    await local.work(ms, take);
    units++;
  }
}
