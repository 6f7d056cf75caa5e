/**
 * The sinks a stage writes (after Flink's `RecordWriterOutput`, for outputs that leave the job): a
 * file shard (published at commit), print, a user `SinkFunction`, and a Kafka topic (in the unit's
 * transaction). Each is a `Push`; the chain counts what arrives, a sink counts what it wrote.
 */
import { join } from "node:path";
import type { KafkaSinkSpec } from "../../core/api/connectors.js";
import type { RecordContext, SinkContext } from "../../core/api/context.js";
import type { SinkFunction } from "../../core/api/functions.js";
import { SinkError } from "../../core/errors.js";
import type { LogicalNode } from "../../core/plan/logical.js";
import { ShardWriter, shardFileName } from "../../connectors/file/staging.js";
import { discardSidecar, LinePositions, writeSidecar } from "../../connectors/file/line-lineage.js";
import type { ShardLineage } from "../../core/plan/lineage.js";
import { keyedOperatorsOf } from "../../core/plan/stream.js";
import { encodeSinkValue } from "../../connectors/kafka/records.js";
import { encodeRecord } from "../record-codec.js";
import type { Call, RecordInvoker, Then } from "./invoker.js";
import type { Push } from "./push.js";
import type { StreamCommit } from "./stream-commit.js";
import type { StageUnit } from "./unit.js";

/** The key function of a keyed Kafka sink. */
type KeyFn = (v: unknown) => string | null;

/** The sinks of one stage run, and what finishes or discards them. */
export class Sinks {
  private readonly writers: ShardWriter[] = [];
  private readonly finishers: Array<() => Promise<void>> = [];
  private readonly discards: Array<() => Promise<void>> = [];

  constructor(
    private readonly unit: StageUnit,
    private readonly invoker: RecordInvoker,
    /** Streaming: the unit's Kafka transaction. */
    private readonly stream: StreamCommit | null,
  ) {}

  /** The push of sink `node`, whose user function (if any) is `fn`. */
  push(node: LogicalNode, fn: unknown, ctx: RecordContext): Push {
    const spec = node.sink!;
    const producer = this.unit.node(node.inputs[0]!.from).name;
    switch (spec.kind) {
      case "file":
        return this.filePush(node, producer);
      case "print":
        return this.printPush(node, spec.prefix, producer);
      case "kafka":
        return this.kafkaPush(node, spec, fn as KeyFn | undefined, ctx, producer);
      default:
        return this.functionPush(node, fn as SinkFunction<unknown> | ((v: unknown, c: SinkContext) => unknown), ctx);
    }
  }

  /** Flushes what the user sinks buffered, and closes the shard files. */
  async finish(): Promise<void> {
    for (const f of this.finishers) await f();
  }

  /** Drops the shard files (and lineage sidecars) this attempt wrote. */
  async discard(): Promise<void> {
    for (const w of this.writers) await w.discard();
    for (const d of this.discards) await d();
  }

  private filePush(node: LogicalNode, producer: string): Push {
    const counts = this.unit.countsOf(node.id);
    const path = join(this.unit.staging, node.id, shardFileName(this.unit.input.shard));
    const writer = new ShardWriter(path);
    this.writers.push(writer);
    const lineage = this.unit.lineage;
    if (!lineage) {
      this.finishers.push(() => writer.finish());
      return (v) => {
        counts.out++;
        return writer.writeLine(encodeRecord(v, producer));
      };
    }
    // The sidecar goes first: a shard never shows without one from its own attempt or a later one.
    const positions = new LinePositions();
    this.finishers.push(async () => {
      await writeSidecar(path, shardLineage(this.unit, positions));
      await writer.finish();
    });
    this.discards.push(() => discardSidecar(path));
    return (v) => {
      counts.out++;
      positions.add(lineage.start, lineage.length);
      return writer.writeLine(encodeRecord(v, producer));
    };
  }

  private printPush(node: LogicalNode, prefix: string, producer: string): Push {
    const counts = this.unit.countsOf(node.id);
    return (v) => {
      // A record run again for its counts only was printed by the attempt that committed it.
      if (!this.stream?.recounting) process.stdout.write(`${prefix}${encodeRecord(v, producer)}\n`);
      counts.out++;
    };
  }

  private functionPush(node: LogicalNode, sink: SinkFunction<unknown> | ((v: unknown, c: SinkContext) => unknown), ctx: RecordContext): Push {
    const counts = this.unit.countsOf(node.id);
    const invoke = typeof sink === "function" ? sink : (v: unknown, c: SinkContext) => sink.invoke(v, c);
    const sinkCtx = (c: RecordContext): SinkContext => ({ ...c, shard: this.unit.input.shard });
    const first = sinkCtx(ctx);
    if (typeof sink !== "function" && sink.finish) {
      this.finishers.push(async () => {
        await sink.finish?.(first);
      });
    }
    const written: Then = () => {
      counts.out++;
    };
    // Retries get a context of their own (their attempt number); the first try reuses one.
    const call: Call = (v, c) => invoke(v, c === first ? first : sinkCtx(c));
    return (v) => {
      // A record run again for its counts only reached this sink in the attempt that committed it.
      if (this.stream?.recounting) return written(undefined, v);
      return this.invoker.invoke(node, first, v, call, written);
    };
  }

  /** Adds outputs to the unit's transaction; the key comes from the key function or the source record. */
  private kafkaPush(node: LogicalNode, spec: KafkaSinkSpec, keyFn: KeyFn | undefined, ctx: RecordContext, producer: string): Push {
    const stream = this.stream;
    if (!stream) throw new SinkError(`Kafka sink "${node.name}" needs a streaming job (a Kafka source)`);
    const counts = this.unit.countsOf(node.id);
    const json = (x: unknown): string => encodeRecord(x, producer);
    const write = (v: unknown, key: string | null): void => {
      const source = stream.current;
      const headers = stream.withLineage(source && Object.keys(source.headers).length > 0 ? source.headers : undefined);
      stream.write(spec.topic, {
        key: spec.keyed ? key : stream.sourceKey(),
        value: encodeSinkValue(spec, v, node.name, json),
        ...(headers ? { headers } : {}),
        ...(source ? { timestamp: source.timestamp } : {}),
      });
      counts.out++;
    };
    if (!spec.keyed || !keyFn) return (v) => write(v, null);
    const call: Call = (v) => keyFn(v);
    const then: Then = (key, v) => write(v, key === null || key === undefined ? null : String(key));
    return (v) => this.invoker.invoke(node, ctx, v, call, then);
  }
}

/** The sidecar of a file-sink shard of `unit`: who wrote it, from which split, and its lines' `positions`. */
function shardLineage(unit: StageUnit, positions: LinePositions): ShardLineage {
  const { input, stage, host } = unit;
  const spec = stage.source ? unit.node(stage.operators[0]!).source : undefined;
  const name = stage.source ? unit.node(stage.operators[0]!).name : "";
  const traced = spec !== undefined && keyedOperatorsOf(stage).length === 0;
  let source: ShardLineage["source"] = null;
  if (traced && spec.kind === "file") source = { kind: "file", path: (input.split!.descriptor as unknown as { path: string }).path };
  else if (traced) source = { kind: spec.kind === "collection" ? "collection" : "function", name };
  const lineage = unit.lineage!;
  return {
    stage: stage.id,
    shard: input.shard,
    split: input.split ? { index: input.split.index, descriptor: input.split.descriptor } : null,
    workflowId: host.execution?.workflowId ?? "",
    runId: host.execution?.runId ?? "",
    attempt: host.execution?.attempt ?? 0,
    at: new Date().toISOString(),
    source,
    lines: positions.lines,
    positions: positions.toString(),
    ...(lineage.calls.length > 0 ? { llm: lineage.calls } : {}),
  };
}
