/**
 * The benchmark registry: every case `npm run bench` knows, in the order it runs them. A new case
 * is one import and one line here.
 */
import type { BenchCase } from "./case.js";
import { boundedCase } from "./bounded/case.js";
import { boundedLineageCase } from "./bounded/lineage-case.js";
import { historyCase } from "./history.js";
import { scaleCase } from "./scale.js";
import { scriptCase } from "./script-case.js";

/** All cases, in run order. */
export const CASES: readonly BenchCase[] = [
  boundedCase,
  boundedLineageCase,
  historyCase,
  scaleCase,
  scriptCase({
    name: "kafka",
    file: "bench/kafka.ts",
    summary: "Kafka -> Kafka exactly once vs plain kafkajs (with/without transactions), 1/2/4 partition workflows, latency, history",
    smokeArgs: ["--smoke"],
    inDefaultRun: true,
  }),
  scriptCase({
    name: "stateful",
    file: "bench/stateful.ts",
    summary: "keyed windows, 1M events, 10k keys, Kafka -> Kafka exactly once vs Kafka Streams and Flink; restore; bounded",
    inDefaultRun: true,
  }),
  scriptCase({
    name: "savepoint",
    file: "bench/savepoint.ts",
    summary: "savepoint and restore at 10k/100k/1M keys vs one read of the changelog: time, size, cold rebuild, local recovery",
    smokeArgs: ["--smoke"],
    inDefaultRun: true,
  }),
  scriptCase({
    name: "chaos",
    file: "bench/chaos.ts",
    summary: "faults under running jobs (dev server kill -9, broker pause, clock skew, disk full): lost, duplicated, stall",
    smokeArgs: ["--smoke"],
    inDefaultRun: false,
  }),
  scriptCase({ name: "soak", file: "bench/soak.ts", summary: "20 minutes of the Kafka job at a steady rate: worker and shim RSS flat", inDefaultRun: false }),
];
