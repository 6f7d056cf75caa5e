/**
 * `npm test`: starts one real Temporal dev server and one real Kafka broker for the whole run (fresh
 * data, headless, free ports), runs every test file with Node's test runner against them, two files
 * at a time (a file that kills its broker first, on a broker of its own), and alone a file that
 * starts a cluster, runs the models or measures resources (`scripts/test-lanes.ts`;
 * SAGE_TEST_LANES=1 runs them one after another, broker killers on the shared broker), stops them. `npm test -- test/unit` runs only the
 * files under the given paths; files under test/unit and test/workflows (the fast tiers) run without them.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { freePort, startScratchServer } from "../dev/temporal-server.js";
import { launchBroker, startBroker } from "../dev/kafka-broker.js";
import { FILE_LIMIT_S, runInLanes } from "./test-lanes.js";

/** History length at which the test server suggests continue-as-new (the default is ~4,096). */
const CONTINUE_AS_NEW_EVENTS = 600;

/** True when @confluentinc/kafka-javascript's native binding is built (`scripts/install-confluent-kafka.sh`). */
function confluentLoads(): boolean {
  return spawnSync(process.execPath, ["-e", 'require("@confluentinc/kafka-javascript")'], { stdio: "ignore" }).status === 0;
}

/** CPU seconds (user and system) a running process has used so far, from /proc; null if unknown. */
function processCpu(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

function testFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else if (p.endsWith(".test.ts")) out.push(p);
  };
  for (const p of paths.length > 0 ? paths : ["test", "examples"]) walk(p);
  return out;
}

// Arguments starting with "--" go to node's test runner as they are (e.g. --test-name-pattern=broker).
const args = process.argv.slice(2);
const files = testFiles(args.filter((a) => !a.startsWith("--")));
const testArgs = args.filter((a) => a.startsWith("--"));
// Unit tests need no server; workflow tests start their own time-skipping test server.
const SERVERLESS = [join("test", "unit"), join("test", "workflows")];
const needsServer = files.some((f) => !SERVERLESS.some((dir) => f.startsWith(dir)));
// The workflow tier's test server is installed on first use, as the broker's jars are.
if (files.some((f) => f.startsWith(join("test", "workflows"))) && !existsSync(join(".tools", "temporal-test-server", "test-server"))) {
  const install = spawnSync("bash", ["scripts/install-test-server.sh"], { stdio: "inherit" });
  if (install.status !== 0) process.exit(install.status ?? 1);
}
// The confluent Kafka client's native binding is built on first use too (tests run both clients).
if (needsServer && !confluentLoads()) {
  const install = spawnSync("bash", ["scripts/install-confluent-kafka.sh"], { stdio: "inherit" });
  if (install.status !== 0) process.exit(install.status ?? 1);
}
const dir = mkdtempSync(join(tmpdir(), "sage-test-"));
const server = needsServer
  ? await startScratchServer(dir, {
      // Suggest continue-as-new early so tests exercise the checkpoint path with small jobs.
      dynamicConfig: [`limit.historyCount.suggestContinueAsNew=${CONTINUE_AS_NEW_EVENTS}`],
      log: (m) => process.stderr.write(`${m}\n`),
    })
  : null;
const broker = needsServer
  ? startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") }, (m) => process.stderr.write(`${m}\n`))
  : null;
const code = await runInLanes(files, {
  // Two lanes. A third did not pay on two cores when the files were CPU-bound (clean-clone CI of
  // 2026-12-03 with SAGE_TEST_LANES=3: 2,575 s of tests against 2,467 s with two). Once sage processes
  // started at half the CPU it did (1,947 s against 2,416 s), but the savepoint test's drain then
  // outlasted its 120 s guard: a third lane waits until that test's waits are made robust.
  lanes: Number(process.env.SAGE_TEST_LANES ?? 2),
  fileLimitS: Number(process.env.SAGE_TEST_FILE_LIMIT_S ?? FILE_LIMIT_S),
  // A file that kills its broker gets one of its own (killed with it), so it can run beside others.
  ...(broker
    ? {
        ownBroker: async (file: string) => {
          const own = await launchBroker(
            { port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, `kafka-${basename(file, ".test.ts")}`) },
            (m) => process.stderr.write(`${m}\n`),
          );
          return {
            env: { SAGE_TEST_KAFKA: own.address, SAGE_TEST_KAFKA_CONTROLLER_PORT: String(own.controllerPort), SAGE_TEST_KAFKA_DATA: own.dataDir },
            stop: () => own.kill(),
            pid: () => own.pid(),
          };
        },
      }
    : {}),
  // --test-force-exit: a file's process ends once its tests are done, even if a client leaked an idle
  // connection (the broker closes one only after 10 minutes: a leak once held the suite that long).
  nodeArgs: ["--import", "tsx", "--test-force-exit", "--test-reporter=spec", ...testArgs],
  env: {
    ...process.env,
    ...(server ? { SAGE_TEST_ADDRESS: server.address } : {}),
    ...(broker
      ? { SAGE_TEST_KAFKA: broker.address, SAGE_TEST_KAFKA_CONTROLLER_PORT: String(broker.controllerPort), SAGE_TEST_KAFKA_DATA: broker.dataDir }
      : {}),
    SAGE_TEST_DIR: dir,
    // No /metrics endpoints by default: tests run many workers and shims at once on one machine
    // (monitoring.port would clash); the metrics test turns them on with ports of its own.
    SAGE_MONITORING_ENABLED: "false",
    SAGE_REPO: resolve("."),
  },
  write: (text) => process.stdout.write(text),
});
const serversCpu = [
  ["dev server", server?.pid ?? null],
  ["broker", broker?.pid() ?? null],
].map(([name, pid]) => `${name} ${processCpu(pid as number | null)?.toFixed(0) ?? "?"} s`);
if (server || broker) process.stdout.write(`CPU of the shared servers: ${serversCpu.join(", ")}\n`);
broker?.stop();
await server?.stop();
process.exit(code);
