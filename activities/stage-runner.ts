/**
 * Runs one fused stage over one split or batch: wires the stage's operators into a push chain,
 * retries records per operator policy, sends records that fail for good to the dead letters,
 * writes sink shards, and returns counts plus the records that leave the stage.
 */
import { join } from "node:path";
import { rm } from "node:fs/promises";
import type { Logger } from "pino";
import type { CompiledPipeline } from "../core/api/pipeline.js";
import type { ProcessContext, RecordContext, SinkContext, SourceContext } from "../core/api/context.js";
import type { SinkFunction, SourceFunction } from "../core/api/functions.js";
import { JOB_FATAL_CODES, NonRetryableError, PayloadBudgetError, SageError } from "../core/errors.js";
import type { StageCounts, StageInput, StageOutput } from "../core/plan/job.js";
import type { LogicalNode, RetryPolicy } from "../core/plan/logical.js";
import type { Stage } from "../core/plan/physical.js";
import { readFileSplit, type FileSplit } from "../connectors/file/source.js";
import { ShardWriter, jobStagingDir } from "../connectors/file/staging.js";
import { checkRecordSize, encodeRecord } from "./record-codec.js";
import type { OperatorRegistry } from "./registry.js";

/** What the stage runner needs from its host activity. */
export interface StageHost {
  registry: OperatorRegistry;
  dataDir: string;
  logger: Logger;
  /** Records liveness with the server; throws when the activity was cancelled. */
  heartbeat(details?: unknown): void;
}

type Push = (value: unknown) => Promise<void>;
type Outcome = { ok: true; value: unknown } | { ok: false };

/** True for errors that must fail the job rather than dead-letter one record. */
export function isJobFatal(err: unknown): err is SageError {
  return err instanceof SageError && JOB_FATAL_CODES.includes(err.code);
}

function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxIntervalMs, policy.initialIntervalMs * policy.backoffCoefficient ** (attempt - 1));
}

function safeJson(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value) ?? "null") as unknown;
  } catch {
    return String(value);
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  if (ms <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** One execution of one stage on one unit of work. */
class StageRun {
  readonly counts: StageCounts = {};
  readonly outputs: Record<string, unknown[]> = {};
  private outputBytes = 0;
  private readonly staging: string;
  private readonly deadLetters: ShardWriter;
  private deadCount = 0;
  private readonly writers: ShardWriter[] = [];
  private readonly finishers: Array<() => Promise<void>> = [];
  private readonly consumers = new Map<string, Push[]>();
  private readonly nodes: Map<string, LogicalNode>;
  private sinceHeartbeat = 0;
  private readonly firstContexts = new Map<string, RecordContext>();

  constructor(
    private readonly input: StageInput,
    private readonly compiled: CompiledPipeline,
    private readonly stage: Stage,
    private readonly host: StageHost,
    private readonly logger: Logger,
  ) {
    this.nodes = new Map(compiled.plan.nodes.map((n) => [n.id, n] as const));
    this.staging = jobStagingDir(host.dataDir, input.pipeline, input.jobId);
    this.deadLetters = new ShardWriter(join(this.staging, "_dead-letters", `${input.shard}.jsonl`));
    for (const op of stage.operators) this.counts[op] = { in: 0, out: 0, dead: 0 };
  }

  private node(id: string): LogicalNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`plan has no operator "${id}"`);
    return n;
  }

  private recordContext(node: LogicalNode, attempt: number): RecordContext {
    return { operatorId: node.id, jobId: this.input.jobId, params: this.input.params, attempt, logger: this.logger };
  }

  private tick(): void {
    if (++this.sinceHeartbeat >= 1000) {
      this.sinceHeartbeat = 0;
      this.host.heartbeat();
    }
  }

  /** Calls `invoke` under the operator's retry policy; a record that fails for good is dead-lettered. */
  private async attempt(node: LogicalNode, value: unknown, invoke: (ctx: RecordContext) => unknown): Promise<Outcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        let result = invoke(attempt === 1 ? this.firstContexts.get(node.id)! : this.recordContext(node, attempt));
        if (result instanceof Promise) result = await withTimeout(result, node.timeoutMs, `operator "${node.name}"`);
        return { ok: true, value: result };
      } catch (err) {
        if (isJobFatal(err)) throw err;
        const final = err instanceof NonRetryableError || attempt >= node.retry.maxAttempts;
        if (final) {
          await this.deadLetter(node, value, err, attempt);
          return { ok: false };
        }
        await new Promise((r) => setTimeout(r, backoffMs(node.retry, attempt)));
        this.host.heartbeat();
      }
    }
  }

  /** Writes one dead letter: operator, error, attempts and the record itself. */
  async deadLetter(node: LogicalNode, record: unknown, err: unknown, attempts: number): Promise<void> {
    this.counts[node.id]!.dead++;
    this.deadCount++;
    const e = err instanceof Error ? err : new Error(String(err));
    const entry = {
      pipeline: this.input.pipeline,
      jobId: this.input.jobId,
      operator: node.id,
      operatorName: node.name,
      shard: this.input.shard,
      attempts,
      error: { name: e.name, message: e.message, ...(e instanceof SageError ? { code: e.code } : {}) },
      record: safeJson(record),
    };
    this.logger.warn({ operator: node.id, attempts, error: e.message }, "record sent to dead letters");
    await this.deadLetters.writeLine(JSON.stringify(entry));
  }

  private emitter(node: LogicalNode, tag: string | null): Push {
    const list = this.consumers.get(`${node.id}#${tag ?? ""}`) ?? [];
    const counts = this.counts[node.id]!;
    if (list.length === 1) {
      const only = list[0]!;
      return (v) => {
        counts.out++;
        return only(v);
      };
    }
    return async (v) => {
      counts.out++;
      for (const c of list) await c(v);
    };
  }

  private consume(from: string, tag: string | null, push: Push): void {
    const key = `${from}#${tag ?? ""}`;
    const list = this.consumers.get(key) ?? [];
    list.push(push);
    this.consumers.set(key, list);
  }

  /** Wires the stage: edges leaving the stage first, then operators from last to first. */
  async wire(): Promise<Push | null> {
    const budget = this.input.runtime.maxBatchBytes;
    for (const edge of this.compiled.plan.edges.filter((e) => e.fromStage === this.stage.id)) {
      const producer = this.node(edge.fromOperator).name;
      const bucket = (this.outputs[edge.toStage] ??= []);
      this.consume(edge.fromOperator, edge.tag, async (v) => {
        const json = encodeRecord(v, producer);
        checkRecordSize(json, producer, budget);
        this.outputBytes += json.length;
        if (this.outputBytes > budget) {
          throw new PayloadBudgetError(
            `stage "${this.stage.name}" emitted more than ${budget} bytes toward stage ${edge.toStage} for shard ${this.input.shard}; ` +
              `lower execution.split-bytes or raise execution.max-batch-bytes`,
          );
        }
        bucket.push(v);
      });
    }
    let entry: Push | null = null;
    for (const id of [...this.stage.operators].reverse()) {
      const node = this.node(id);
      this.firstContexts.set(id, this.recordContext(node, 1));
      const push = await this.operatorPush(node);
      for (const input of node.inputs) if (this.stage.operators.includes(input.from)) this.consume(input.from, input.tag, push);
      if (id === this.stage.operators[0]) entry = push;
    }
    return entry;
  }

  private async operatorPush(node: LogicalNode): Promise<Push> {
    const fn = await this.host.registry.function<unknown>(this.compiled, node);
    const counts = this.counts[node.id]!;
    const main = (): Push => this.emitter(node, null);
    switch (node.kind) {
      case "source":
        return main();
      case "map": {
        const call =
          typeof fn === "function"
            ? (fn as (v: unknown, c: RecordContext) => unknown)
            : (v: unknown, c: RecordContext) => (fn as { map(v: unknown, c: RecordContext): unknown }).map(v, c);
        const emit = main();
        return async (v) => {
          counts.in++;
          const r = await this.attempt(node, v, (c) => call(v, c));
          this.tick();
          if (r.ok) await emit(r.value);
        };
      }
      case "filter": {
        const call =
          typeof fn === "function"
            ? (fn as (v: unknown, c: RecordContext) => unknown)
            : (v: unknown, c: RecordContext) => (fn as { filter(v: unknown, c: RecordContext): unknown }).filter(v, c);
        const emit = main();
        return async (v) => {
          counts.in++;
          const r = await this.attempt(node, v, (c) => call(v, c));
          this.tick();
          if (r.ok && r.value) await emit(v);
        };
      }
      case "flatMap": {
        const call =
          typeof fn === "function"
            ? (fn as (v: unknown, c: RecordContext) => unknown)
            : (v: unknown, c: RecordContext) => (fn as { flatMap(v: unknown, c: RecordContext): unknown }).flatMap(v, c);
        const emit = main();
        return async (v) => {
          counts.in++;
          const r = await this.attempt(node, v, async (c) => {
            const out = await call(v, c);
            if (out === null || typeof out !== "object" || !(Symbol.iterator in out)) {
              throw new NonRetryableError(`flatMap "${node.name}" must return an iterable (an array), got ${out === null ? "null" : typeof out}`);
            }
            return Array.from(out as Iterable<unknown>);
          });
          this.tick();
          if (r.ok) for (const x of r.value as unknown[]) await emit(x);
        };
      }
      case "process": {
        const call =
          typeof fn === "function"
            ? (fn as (v: unknown, c: ProcessContext<unknown>) => unknown)
            : (v: unknown, c: ProcessContext<unknown>) => (fn as { process(v: unknown, c: ProcessContext<unknown>): unknown }).process(v, c);
        const emits = new Map<string | null, Push>([[null, main()]]);
        const emitTo = (tag: string | null): Push => {
          let e = emits.get(tag);
          if (!e) emits.set(tag, (e = this.emitter(node, tag)));
          return e;
        };
        return async (v) => {
          counts.in++;
          const r = await this.attempt(node, v, async (c) => {
            const buffered: Array<[string | null, unknown]> = [];
            const ctx: ProcessContext<unknown> = { ...c, emit: (x) => buffered.push([null, x]), output: (tag, x) => buffered.push([tag.id, x]) };
            await call(v, ctx);
            return buffered;
          });
          this.tick();
          if (r.ok) for (const [tag, x] of r.value as Array<[string | null, unknown]>) await emitTo(tag)(x);
        };
      }
      case "sink":
        return this.sinkPush(node, fn);
    }
  }

  private sinkPush(node: LogicalNode, fn: unknown): Push {
    const counts = this.counts[node.id]!;
    const spec = node.sink!;
    const producer = this.node(node.inputs[0]!.from).name;
    if (spec.kind === "file") {
      const writer = new ShardWriter(join(this.staging, node.id, `${this.input.shard}.jsonl`));
      this.writers.push(writer);
      this.finishers.push(() => writer.finish());
      return async (v) => {
        counts.in++;
        await writer.writeLine(encodeRecord(v, producer));
        counts.out++;
      };
    }
    if (spec.kind === "print") {
      return async (v) => {
        counts.in++;
        process.stdout.write(`${spec.prefix}${encodeRecord(v, producer)}\n`);
        counts.out++;
      };
    }
    const sink = fn as SinkFunction<unknown> | ((v: unknown, c: SinkContext) => unknown);
    const invoke = typeof sink === "function" ? sink : (v: unknown, c: SinkContext) => sink.invoke(v, c);
    const sinkCtx = (c: RecordContext): SinkContext => ({ ...c, shard: this.input.shard });
    if (typeof sink !== "function" && sink.finish) {
      this.finishers.push(async () => {
        await sink.finish?.(sinkCtx(this.recordContext(node, 1)));
      });
    }
    return async (v) => {
      counts.in++;
      const r = await this.attempt(node, v, (c) => invoke(v, sinkCtx(c)));
      this.tick();
      if (r.ok) counts.out++;
    };
  }

  /** Reads the split of a source stage into the chain. */
  async drive(entry: Push): Promise<void> {
    if (!this.stage.source) {
      for (const v of this.input.batch ?? []) await entry(v);
      return;
    }
    const node = this.node(this.stage.operators[0]!);
    const counts = this.counts[node.id]!;
    const split = this.input.split!.descriptor;
    const spec = node.source!;
    if (spec.kind === "file") {
      for await (const rec of readFileSplit(split as unknown as FileSplit, spec.format)) {
        counts.in++;
        if (rec.ok) await entry(rec.value);
        else await this.deadLetter(node, rec.raw, new NonRetryableError(rec.reason), 1);
        this.tick();
      }
      return;
    }
    if (spec.kind === "collection") {
      const items = (await this.host.registry.function<unknown[]>(this.compiled, node)) ?? [];
      const [from, to] = split as [number, number];
      for (let i = from; i < to; i++) {
        counts.in++;
        await entry(items[i]);
        this.tick();
      }
      return;
    }
    const source = await this.host.registry.function<SourceFunction<unknown>>(this.compiled, node);
    for await (const v of source.read(split, this.sourceContext(node))) {
      counts.in++;
      await entry(v);
      this.tick();
    }
  }

  sourceContext(node: LogicalNode): SourceContext {
    return { params: this.input.params, parallelism: node.parallelism ?? this.compiled.plan.parallelism, logger: this.logger };
  }

  async finish(): Promise<void> {
    for (const f of this.finishers) await f();
    if (this.deadCount > 0) await this.deadLetters.finish();
  }

  async discard(): Promise<void> {
    for (const w of this.writers) await w.discard();
    await this.deadLetters.discard();
  }

  /** Removes what an earlier attempt of this shard left in the dead letters. */
  async clearEarlierAttempt(): Promise<void> {
    await rm(join(this.staging, "_dead-letters", `${this.input.shard}.jsonl`), { force: true });
  }
}

/** Runs one stage activity. */
export async function runStage(input: StageInput, host: StageHost, logger: Logger): Promise<StageOutput> {
  const compiled = host.registry.resolve(input);
  const stage = compiled.plan.stages.find((s) => s.id === input.stage);
  if (!stage) throw new NonRetryableError(`plan ${compiled.plan.hash.slice(0, 12)} has no stage "${input.stage}"`);
  const run = new StageRun(input, compiled, stage, host, logger);
  await run.clearEarlierAttempt();
  const entry = await run.wire();
  try {
    await run.drive(entry!);
    await run.finish();
  } catch (err) {
    await run.discard();
    throw err;
  }
  return { counts: run.counts, outputs: run.outputs };
}
