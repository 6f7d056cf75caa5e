/**
 * The keyed state a `KeyedProcessFunction` sees (`ctx.state.value/list/map`): handles over the
 * backend, bound to the operator's current key through a cursor, with Flink's time-to-live: a
 * value expires `ttlMs` of processing time (`clock()`) after it was last written; an expired value
 * reads as absent and is deleted when read (lazily: state never read again stays, as in Flink
 * without a cleanup strategy). List elements and map entries expire one by one.
 */
import type { KeyedStateStore, ListState, MapState, StateOptions, ValueState } from "../../core/api/state.js";
import type { StateBackend } from "./backend.js";
import { StateUsageError, StateValueError } from "./errors.js";
import { encodeStateValue } from "./state-codec.js";
import { stateLabel, userStateName } from "./state-names.js";

/** The key the operator is working on; handles read it on every call. */
export interface KeyCursor {
  keyGroup: number;
  key: string;
}

/** What every handle shares: where it stores, under which name, and its time-to-live. */
class Handle {
  constructor(
    protected readonly backend: StateBackend,
    protected readonly cursor: KeyCursor,
    protected readonly name: string,
    protected readonly ttlMs: number | undefined,
    protected readonly clock: () => number,
  ) {}

  protected read(): unknown {
    return this.backend.get(this.cursor.keyGroup, this.cursor.key, this.name, "");
  }

  protected writeJson(json: string): void {
    this.backend.putJson(this.cursor.keyGroup, this.cursor.key, this.name, "", json);
  }

  protected encode(value: unknown, where = ""): string {
    const json = encodeStateValue(value, () => stateLabel(this.name) + where);
    return this.ttlMs === undefined ? json : `[${this.clock() + this.ttlMs},${json}]`;
  }

  /** True when a stored `[expiresAt, value]` pair has expired. */
  protected expired(stored: unknown): boolean {
    return (stored as [number, unknown])[0] <= this.clock();
  }

  clear(): void {
    this.backend.remove(this.cursor.keyGroup, this.cursor.key, this.name, "");
  }
}

class ValueHandle<T> extends Handle implements ValueState<T> {
  value(): T | undefined {
    const stored = this.read();
    if (stored === undefined || this.ttlMs === undefined) return stored as T | undefined;
    if (this.expired(stored)) {
      this.clear();
      return undefined;
    }
    return (stored as [number, T])[1];
  }

  update(value: T): void {
    this.writeJson(this.encode(value));
  }
}

class ListHandle<T> extends Handle implements ListState<T> {
  get(): T[] {
    const stored = this.read() as unknown[] | undefined;
    if (stored === undefined) return [];
    if (this.ttlMs === undefined) return stored as T[];
    const live = stored.filter((e) => !this.expired(e));
    if (live.length === 0) this.clear();
    else if (live.length < stored.length) this.writeJson(JSON.stringify(live));
    return live.map((e) => (e as [number, T])[1]);
  }

  add(value: T): void {
    this.backend.appendJson(this.cursor.keyGroup, this.cursor.key, this.name, "", this.encode(value));
  }

  update(values: T[]): void {
    if (!Array.isArray(values)) throw new StateValueError(`${stateLabel(this.name)}: update takes an array, got ${typeof values}`);
    if (values.length === 0) return this.clear();
    this.writeJson(`[${values.map((v, i) => this.encode(v, ` at index ${i}`)).join(",")}]`);
  }
}

/** Sets an own property, even one named `__proto__`. */
function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

class MapHandle<K extends string, V> extends Handle implements MapState<K, V> {
  /** The stored map with expired entries dropped (and the drop written back). */
  private live(): Record<string, unknown> | undefined {
    const stored = this.read() as Record<string, unknown> | undefined;
    if (stored === undefined || this.ttlMs === undefined) return stored;
    let dropped = false;
    for (const k of Object.keys(stored)) {
      if (this.expired(stored[k])) {
        delete stored[k];
        dropped = true;
      }
    }
    if (dropped) this.store(stored);
    return stored;
  }

  private store(map: Record<string, unknown>): void {
    if (Object.keys(map).length === 0) this.clear();
    else this.writeJson(JSON.stringify(map));
  }

  private unwrap(stored: unknown): V {
    return (this.ttlMs === undefined ? stored : (stored as [number, V])[1]) as V;
  }

  get(key: K): V | undefined {
    const map = this.live();
    return map !== undefined && Object.hasOwn(map, key) ? this.unwrap(map[key]) : undefined;
  }

  put(key: K, value: V): void {
    const json = this.encode(value, ` at map key ${JSON.stringify(key)}`);
    const map = this.live() ?? {};
    setOwn(map, key, JSON.parse(json));
    this.writeJson(JSON.stringify(map));
  }

  remove(key: K): void {
    const map = this.live();
    if (map === undefined || !Object.hasOwn(map, key)) return;
    delete map[key];
    this.store(map);
  }

  contains(key: K): boolean {
    const map = this.live();
    return map !== undefined && Object.hasOwn(map, key);
  }

  keys(): K[] {
    return Object.keys(this.live() ?? {}) as K[];
  }

  entries(): Array<[K, V]> {
    return Object.entries(this.live() ?? {}).map(([k, v]) => [k as K, this.unwrap(v)]);
  }
}

type Kind = "value" | "list" | "map";

/** The `KeyedStateStore` of an operator: one handle per state name, reused across records. */
export class KeyedStateHandles implements KeyedStateStore {
  private readonly handles = new Map<string, { kind: Kind; handle: Handle }>();

  constructor(
    private readonly backend: StateBackend,
    private readonly cursor: KeyCursor,
    private readonly clock: () => number,
  ) {}

  value<T>(name: string, options?: StateOptions): ValueState<T> {
    return this.handle("value", name, options, ValueHandle) as ValueHandle<T>;
  }

  list<T>(name: string, options?: StateOptions): ListState<T> {
    return this.handle("list", name, options, ListHandle) as ListHandle<T>;
  }

  map<K extends string, V>(name: string, options?: StateOptions): MapState<K, V> {
    return this.handle("map", name, options, MapHandle) as MapHandle<K, V>;
  }

  private handle(kind: Kind, name: string, options: StateOptions | undefined, make: new (...args: ConstructorParameters<typeof Handle>) => Handle): Handle {
    const known = this.handles.get(name);
    if (known !== undefined) {
      if (known.kind !== kind) throw new StateUsageError(`state "${name}" is a ${known.kind} state; it cannot also be used as a ${kind} state`);
      return known.handle;
    }
    const ttl = options?.ttlMs;
    if (ttl !== undefined && !(Number.isFinite(ttl) && ttl > 0))
      throw new StateUsageError(`state "${name}": ttlMs must be a number of ms > 0, got ${String(ttl)}`);
    const handle = new make(this.backend, this.cursor, userStateName(name), ttl, this.clock);
    this.handles.set(name, { kind, handle });
    return handle;
  }
}
