/**
 * The fast tier's Temporal: the SDK's time-skipping test server (installed by
 * `scripts/install-test-server.sh`), one per test file, in a `TestWorkflowEnvironment` whose client
 * skips time while a test awaits a workflow's result (and `env.sleep` skips on demand). No dev
 * server and no broker: the activities are test functions, so what is tested is the workflow logic.
 *
 * The file starts the server itself and then builds the environment as `createTimeSkipping` does:
 * `createTimeSkipping` gives the process it starts 5 s to listen, and the JVM can take longer on a
 * loaded two-core machine.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TestWorkflowEnvironment } from "@temporalio/testing";
import { DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from "@temporalio/worker";
import { freePort } from "../../dev/temporal-server.js";
import { cachedWorkflowBundle } from "../../worker/workflow-bundle.js";

/** Root of the repository. */
const REPO = process.env.SAGE_REPO ?? resolve(".");

/** The test server's executable (`scripts/install-test-server.sh` writes it). */
export const TEST_SERVER = join(REPO, ".tools", "temporal-test-server", "test-server");

/** Longest wait for the server to listen. */
const START_TIMEOUT_MS = 60_000;

/** A test environment on its own test server. */
export interface WorkflowTestServer {
  env: TestWorkflowEnvironment;
  /** Closes the connections and stops the server. */
  stop(): Promise<void>;
}

/**
 * What `createTimeSkipping` and `createFromExistingServer` both call: the second with time skipping
 * off, which this server supports. Private in the SDK's typings, hence the cast.
 */
const createOnServer = (
  TestWorkflowEnvironment as unknown as {
    create(options: { server: { type: "existing" }; address: string; namespace: string; supportsTimeSkipping: boolean }): Promise<TestWorkflowEnvironment>;
  }
).create.bind(TestWorkflowEnvironment);

/** True once something listens on `port` of loopback. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: "127.0.0.1", port }, () => (socket.destroy(), done(true)));
    socket.once("error", () => done(false));
  });
}

/** Starts the time-skipping test server on a free port and connects a test environment to it. */
export async function startTestServer(): Promise<WorkflowTestServer> {
  if (!existsSync(TEST_SERVER)) throw new Error(`${TEST_SERVER} is missing: run \`bash scripts/install-test-server.sh\``);
  // The SDK's own worker chatter stays at WARN.
  Runtime.install({ logger: new DefaultLogger("WARN") });
  const port = await freePort();
  // Time skipping starts locked, as `createTimeSkipping` starts it: an idle workflow's timers do not fire at once.
  const child: ChildProcess = spawn(TEST_SERVER, [String(port)], { stdio: "ignore" });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const stop = async (): Promise<void> => {
    child.kill("SIGKILL");
    await exited;
  };
  try {
    for (const started = Date.now(); !(await listening(port)); await sleep(100)) {
      if (child.exitCode !== null) throw new Error(`${TEST_SERVER} exited with code ${child.exitCode}`);
      if (Date.now() - started > START_TIMEOUT_MS) throw new Error(`${TEST_SERVER} did not listen on port ${port} within ${START_TIMEOUT_MS} ms`);
    }
    const env = await createOnServer({ server: { type: "existing" }, address: `127.0.0.1:${port}`, namespace: "default", supportsTimeSkipping: true });
    return {
      env,
      async stop() {
        await env.teardown();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

let bundle: Promise<WorkflowBundleWithSourceMap> | null = null;
/** The bundle of `workflows/index.ts`, once per process and from the disk cache when this code was bundled before. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= cachedWorkflowBundle(join(REPO, "workflows", "index.ts"));
  return bundle;
}
