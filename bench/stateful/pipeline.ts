/**
 * The stateful bench's Sage job, the same as the Java peers': metrics events through a 5 s
 * bounded-out-of-orderness watermark, keyed by service, into a tumbling 10 s count and a sliding
 * 30 s / 10 s latency aggregate (count, sum, min, max), each to its own sink. Streaming reads and
 * writes Kafka (exactly once, the default) when STATEFUL_IN names the input topic; otherwise it is
 * the bounded variant over a JSON Lines file (params `input`, `tumbling`, `sliding`).
 *   STATEFUL_IN, STATEFUL_TUMBLING, STATEFUL_SLIDING, STATEFUL_GROUP: topics and consumer group.
 */
import {
  definePipeline,
  FileSink,
  FileSource,
  KafkaSink,
  KafkaSource,
  SlidingWindow,
  TumblingWindow,
  WatermarkStrategy,
  type AggregateFunction,
  type DataStream,
} from "sage-temporal";
import type { StatefulEvent } from "./events.js";
import { SLIDING_SIZE_MS, SLIDING_SLIDE_MS, TUMBLING_MS, type SlidingResult, type TumblingResult } from "./results.js";

/** The out-of-orderness bound of the watermark, as in the peers. */
export const OUT_OF_ORDERNESS_MS = 5_000;

/** Counts a window's events. */
export const countEvents: AggregateFunction<StatefulEvent, number, number> = {
  createAccumulator: () => 0,
  add: (_e, n) => n + 1,
  getResult: (n) => n,
  merge: (a, b) => a + b,
};

/** Count, sum, min and max of latency. */
type LatencyStats = Pick<SlidingResult, "count" | "sum" | "min" | "max">;

/** Count, sum, min and max of a window's latencies. */
export const latencyStats: AggregateFunction<StatefulEvent, LatencyStats, LatencyStats> = {
  createAccumulator: () => ({ count: 0, sum: 0, min: Infinity, max: -Infinity }),
  add: (e, a) => ({ count: a.count + 1, sum: a.sum + e.latency, min: Math.min(a.min, e.latency), max: Math.max(a.max, e.latency) }),
  getResult: (a) => a,
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum, min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) }),
};

export default definePipeline("statefulbench", (env) => {
  const input = process.env.STATEFUL_IN;
  const events: DataStream<StatefulEvent> = input
    ? env.fromSource(KafkaSource.topic<StatefulEvent>(input, { groupId: process.env.STATEFUL_GROUP ?? `${input}.sage` }), { name: "events" })
    : env.fromSource(FileSource.jsonl<StatefulEvent>(env.param("input")), { name: "events" });
  const byService = events
    .assignTimestampsAndWatermarks(
      WatermarkStrategy.forBoundedOutOfOrderness<StatefulEvent>(OUT_OF_ORDERNESS_MS).withTimestampAssigner((e) => e.ts),
      {
        name: "event-time",
      },
    )
    // The input topic is keyed by service (as Kafka Streams' groupByKey needs): no repartition.
    .keyBy((e) => e.service, { name: "by-service", sourcePartitioned: true });
  const tumbling = byService
    .window(TumblingWindow.of(TUMBLING_MS))
    .aggregate(countEvents, (service, w, count): TumblingResult => ({ service, start: w.start, end: w.end, count }), { name: "tumbling" });
  const sliding = byService
    .window(SlidingWindow.of(SLIDING_SIZE_MS, SLIDING_SLIDE_MS))
    .aggregate(latencyStats, (service, w, s): SlidingResult => ({ service, start: w.start, end: w.end, ...s }), { name: "sliding" });
  if (input) {
    tumbling.sink(KafkaSink.topic<TumblingResult>(process.env.STATEFUL_TUMBLING ?? `${input}.tumbling`, { key: (r) => r.service }), { name: "tumbling-out" });
    sliding.sink(KafkaSink.topic<SlidingResult>(process.env.STATEFUL_SLIDING ?? `${input}.sliding`, { key: (r) => r.service }), { name: "sliding-out" });
  } else {
    tumbling.sink(FileSink.jsonl<TumblingResult>(env.param("tumbling")), { name: "tumbling-out" });
    sliding.sink(FileSink.jsonl<SlidingResult>(env.param("sliding")), { name: "sliding-out" });
  }
});
