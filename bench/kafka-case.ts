/**
 * Case `kafka`: the Kafka benchmarks of `bench/kafka.ts` (kafka-eos throughput against plain kafkajs
 * with and without transactions, 1/2/4 partition workflows, latency at a steady rate, history bytes
 * per record), run as their own process with their own dev server and broker. Its tables print as
 * it goes and it saves `bench/results/<date>-kafka.json` itself; the case checks that it ran to the
 * end (it waits until every record arrived). When its cases move into the registry one by one,
 * this adapter goes.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import type { BenchCase, BenchContext, CaseReport } from "./case.js";

async function run(ctx: BenchContext): Promise<CaseReport> {
  const args = ["--import", "tsx", "bench/kafka.ts", ...(ctx.size === "smoke" ? ["--smoke"] : [])];
  ctx.log(`kafka: node ${args.join(" ")}`);
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  return {
    title: `kafka: bench/kafka.ts${ctx.size === "smoke" ? " --smoke" : ""} (tables above)`,
    columns: [],
    rows: [],
    checks: [{ what: `bench/kafka.ts ran to the end, every record arrived (exit ${code ?? signal})`, ok: code === 0 }],
    notes: [],
  };
}

/** The registry entry. */
export const kafkaCase: BenchCase = {
  name: "kafka",
  summary: "Kafka -> Kafka exactly once vs plain kafkajs (with/without transactions), 1/2/4 partition workflows, latency, history (bench/kafka.ts)",
  inDefaultRun: true,
  inSmoke: true,
  run,
};
