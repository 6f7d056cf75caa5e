/**
 * The in-memory ordered index of a backend's timers: a binary min-heap by (time, key, namespace),
 * so "every timer at or before t" comes out in a deterministic order (windows fire by end time,
 * then key) in O(log n) each. Timers themselves are state entries; the index is rebuilt from them
 * on restore. Deleting a timer leaves its heap item behind: the backend skips items whose entry
 * is gone, and `compact` drops them when they pile up.
 */

/** One timer: its time, its key (group and encoded key), and the namespace it fires for. */
export interface TimerItem {
  readonly ts: number;
  readonly keyGroup: number;
  readonly key: string;
  readonly namespace: string;
}

function before(a: TimerItem, b: TimerItem): boolean {
  if (a.ts !== b.ts) return a.ts < b.ts;
  if (a.key !== b.key) return a.key < b.key;
  return a.namespace < b.namespace;
}

/** A min-heap of timers ordered by (ts, key, namespace). */
export class TimerIndex<T extends TimerItem> {
  private heap: T[] = [];

  /** Items in the heap, stale ones included. */
  get length(): number {
    return this.heap.length;
  }

  /** Adds a timer. */
  push(item: T): void {
    const h = this.heap;
    let i = h.length;
    h.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, h[parent]!)) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = item;
  }

  /** The earliest timer, without removing it. */
  peek(): T | undefined {
    return this.heap[0];
  }

  /** Removes and returns the earliest timer. */
  pop(): T | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) this.siftDown(last, 0);
    return top;
  }

  /** Keeps the items `live` accepts, one per `identity`: deleted and duplicate timers go. */
  compact(live: (item: T) => boolean, identity: (item: T) => unknown): void {
    const seen = new Set<unknown>();
    const kept = this.heap.filter((t) => live(t) && !seen.has(identity(t)) && seen.add(identity(t)));
    this.heap = kept;
    for (let i = (kept.length >> 1) - 1; i >= 0; i--) this.siftDown(kept[i]!, i);
  }

  /** Removes every item. */
  clear(): void {
    this.heap = [];
  }

  private siftDown(item: T, from: number): void {
    const h = this.heap;
    const n = h.length;
    let i = from;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(h[child + 1]!, h[child]!)) child++;
      if (!before(h[child]!, item)) break;
      h[i] = h[child]!;
      i = child;
    }
    h[i] = item;
  }
}
