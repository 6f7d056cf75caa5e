/**
 * The savepoint bench's job: records `{ k, v }` from a topic keyed by `k`, a source-partitioned
 * keyBy (no repartition topic), and a rolling sum per key: one state entry per key. Only a sum
 * above 1 reaches the sink, so feeding each key once writes no output, and a record sent to a key
 * after a restore shows the sum the restore gave it.
 *   SPBENCH_IN, SPBENCH_OUT, SPBENCH_GROUP: the topics and the consumer group.
 */
import { definePipeline, KafkaSink, KafkaSource } from "sage-temporal";

/** One input record, and the running sum the job emits. */
export interface KeyRecord {
  k: string;
  v: number;
}

export default definePipeline("savepointbench", (env) => {
  const input = process.env.SPBENCH_IN ?? "spbench.in";
  env
    .fromSource(KafkaSource.topic<KeyRecord>(input, { groupId: process.env.SPBENCH_GROUP ?? `${input}.sage` }), { name: "records" })
    .keyBy((r) => r.k, { name: "by-key", sourcePartitioned: true })
    .reduce((a, b) => ({ k: b.k, v: a.v + b.v }), { name: "sum" })
    .filter((r) => r.v > 1, { name: "seen-before" })
    .sink(KafkaSink.topic<KeyRecord>(process.env.SPBENCH_OUT ?? `${input}.out`, { key: (r) => r.k }), { name: "out" });
});
