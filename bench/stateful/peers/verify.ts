/**
 * Checks the stateful bench's Java peers on their own: starts a broker on free ports, produces the
 * events once, then runs each peer (one at a time) and compares its windows with the reference.
 *
 *   npx tsx bench/stateful/peers/verify.ts [--events 1000000] [--services 10000] [--seed 16] [--peers kafka-streams,flink] [--runs 1] [--commit-ms 1000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../../../dev/temporal-server.js";
import { startBroker } from "../../../dev/kafka-broker.js";
import { createKafkajsClient } from "../../../connectors/kafka/kafkajs-client.js";
import { generateEvents, maxLatenessMs, produceEvents } from "../events.js";
import { compareResults, referenceWindows } from "../results.js";
import { runPeer, type PeerName } from "../peers.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const EVENTS = Number(arg("events", "1000000"));
const SERVICES = Number(arg("services", "10000"));
const SEED = Number(arg("seed", "16"));
const PEERS = arg("peers", "kafka-streams,flink").split(",") as PeerName[];
const RUNS = Number(arg("runs", "1"));
const COMMIT_MS = Number(arg("commit-ms", "1000"));
const PARTITIONS = 4;

async function main(): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), "sage-stateful-peers-"));
  const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
  let ok = true;
  try {
    const kafka = createKafkajsClient({ brokers: [broker.address], clientId: "stateful-verify" });
    const events = generateEvents({ events: EVENTS, services: SERVICES, seed: SEED });
    const reference = referenceWindows(events);
    const produced = await produceEvents(kafka, "stateful.in", events, PARTITIONS);
    console.log(
      `${EVENTS} events, ${SERVICES} services, seed ${SEED}, largest lateness ${maxLatenessMs(events, PARTITIONS)} ms; produced ${produced.records} records in ${(produced.ms / 1000).toFixed(1)} s; reference: ${reference.tumbling.length} tumbling, ${reference.sliding.length} sliding windows`,
    );
    for (let run = 1; run <= RUNS; run++) {
      for (const peer of PEERS) {
        const tag = `${peer}.${run}`;
        // Other work on the machine shows in records/s; the load average says how much there was.
        console.log(
          `${peer} run ${run}: load average before ${loadavg()
            .map((l) => l.toFixed(1))
            .join(" ")}`,
        );
        const r = await runPeer(peer, {
          brokers: broker.address,
          input: "stateful.in",
          outputs: { tumbling: `stateful.${tag}.tumbling`, sliding: `stateful.${tag}.sliding` },
          appId: `stateful-${peer}-${run}-${Date.now()}`,
          expected: { tumbling: reference.tumbling.length, sliding: reference.sliding.length },
          inputRecords: EVENTS,
          commitIntervalMs: COMMIT_MS,
          workDir: mkdtempSync(join(dir, `${peer}-`)),
          log: (line) => console.log(line),
        });
        const tumbling = compareResults(reference.tumbling, r.results.tumbling);
        const sliding = compareResults(reference.sliding, r.results.sliding);
        ok &&= tumbling.equal && sliding.equal;
        console.log(
          `${peer} run ${run}: ${Math.round(r.recordsPerSecond).toLocaleString("en-US")} records/s (job ${(r.jobMs / 1000).toFixed(2)} s, start-up ${(r.startupMs / 1000).toFixed(2)} s, wall ${(r.wallMs / 1000).toFixed(2)} s), JVM CPU ${(r.jobCpuMs / 1000).toFixed(1)} s (${Math.round(r.inputRecords / (r.jobCpuMs / 1000)).toLocaleString("en-US")} records per CPU second), RSS peak ${Math.round(r.rssPeakMb)} MB`,
        );
        console.log(`  tumbling: ${tumbling.summary}\n  sliding: ${sliding.summary}`);
      }
    }
  } finally {
    broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return ok;
}

process.exit((await main()) ? 0 : 1);
