/**
 * Writes the analytics example's input: seeded metrics events with injected latency anomalies,
 * out-of-order and late events, to a JSON Lines file (the bounded job) or a Kafka topic (the
 * streaming job), and the injected anomalies beside them, so alerts can be checked against them.
 *   npx tsx examples/analytics/generate.ts --out .sage/analytics/metrics.jsonl [--seed 16] [--minutes 60] [--services 20] [--anomalies 3]
 *   npx tsx examples/analytics/generate.ts --kafka metrics [--partitions 2]     (broker from `sage dev --kafka`)
 * The anomalies go to `--anomalies-out` (default: the output file with `.anomalies.json`) and to stdout.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { kafkaClientOf, loadConfig } from "sage-temporal/client";
import { produceMetrics } from "./metrics-topic.js";
import { generateTraffic, type InjectedAnomaly, type Traffic, type TrafficOptions } from "./traffic.js";

const { values: flags } = parseArgs({
  options: {
    out: { type: "string" },
    kafka: { type: "string" },
    partitions: { type: "string", default: "2" },
    "anomalies-out": { type: "string" },
    seed: { type: "string" },
    minutes: { type: "string" },
    services: { type: "string" },
    anomalies: { type: "string" },
  },
});

/** The generator options given on the command line (the rest are the defaults). */
function trafficOptions(): Partial<TrafficOptions> {
  const numeric = (["seed", "minutes", "services", "anomalies"] as const).filter((k) => flags[k] !== undefined);
  return Object.fromEntries(
    numeric.map((k) => {
      const n = Number(flags[k]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`--${k} must be a whole number, got ${flags[k]}`);
      return [k, n];
    }),
  );
}

/** One line per anomaly, in UTC. */
function describe(traffic: Traffic, where: string): string {
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19);
  const lines = traffic.anomalies.map((a: InjectedAnomaly) => `  ${a.service}: latency x${a.factor} from ${iso(a.start)} to ${iso(a.end)}`);
  return [`${traffic.events.length} events (${traffic.late} late) of ${traffic.profiles.length} services -> ${where}`, "injected anomalies:", ...lines].join(
    "\n",
  );
}

if ((flags.out === undefined) === (flags.kafka === undefined)) throw new Error("give one of --out <file.jsonl> or --kafka <topic>");
const traffic = generateTraffic(trafficOptions());
if (flags.out !== undefined) {
  mkdirSync(dirname(flags.out), { recursive: true });
  writeFileSync(flags.out, traffic.events.map((e) => JSON.stringify(e)).join("\n") + "\n");
} else {
  await produceMetrics(kafkaClientOf(loadConfig()), flags.kafka!, traffic.events, Number(flags.partitions));
}
const anomaliesOut = flags["anomalies-out"] ?? (flags.out !== undefined ? flags.out.replace(/(\.jsonl)?$/, ".anomalies.json") : undefined);
if (anomaliesOut !== undefined) {
  mkdirSync(dirname(anomaliesOut), { recursive: true });
  writeFileSync(anomaliesOut, JSON.stringify(traffic.anomalies, null, 2) + "\n");
}
console.log(describe(traffic, flags.out ?? `topic ${flags.kafka!}`));
