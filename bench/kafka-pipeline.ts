/**
 * The pipeline of the Kafka benchmarks: ~200-byte JSON events in, three stateless operators
 * (parse, filter, enrich), a transactional Kafka sink keyed by the event's key. Topics and group
 * come from the environment when the pipeline is compiled (each case uses its own).
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";

/** A benchmark event: `sentAt` is when the producer sent it (ms), for end-to-end latency. */
export interface BenchEvent {
  id: number;
  key: string;
  sentAt: number;
  amount: number;
  payload: string;
}

/** The transformation both Sage and the plain kafkajs baselines apply. */
export function transform(e: BenchEvent): (BenchEvent & { tier: string }) | null {
  if (e.amount < 0) return null;
  return { ...e, tier: e.amount >= 500 ? "large" : "small" };
}

export default definePipeline("kafkabench", (env) => {
  const input = process.env.BENCH_IN ?? "bench-in";
  const output = process.env.BENCH_OUT ?? "bench-out";
  const group = process.env.BENCH_GROUP ?? "bench";
  env
    .fromSource(KafkaSource.topic<BenchEvent>(input, { groupId: group }), { name: "events" })
    .map((e) => ({ ...e, amount: Math.round(e.amount * 100) / 100 }), { name: "parse" })
    .filter((e) => e.amount >= 0, { name: "valid" })
    .map((e) => transform(e)!, { name: "enrich" })
    .sink(KafkaSink.topic<BenchEvent & { tier: string }>(output, { key: (e) => e.key }), { name: "out" });
});
