/**
 * `npm test`: starts one real Temporal dev server for the whole run (fresh database, headless, free
 * ports), runs every test file with Node's test runner against it, stops the server.
 * `npm test -- test/unit` runs only the files under the given paths.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startScratchServer } from "../client/dev-server.js";

/** History length at which the test server suggests continue-as-new (the default is ~4,096). */
const CONTINUE_AS_NEW_EVENTS = 600;

function testFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else if (p.endsWith(".test.ts")) out.push(p);
  };
  for (const p of paths.length > 0 ? paths : ["test", "examples"]) walk(p);
  return out;
}

const files = testFiles(process.argv.slice(2));
const needsServer = files.some((f) => !f.startsWith(join("test", "unit")));
const dir = mkdtempSync(join(tmpdir(), "sage-test-"));
const server = needsServer
  ? await startScratchServer(dir, {
      // Suggest continue-as-new early so tests exercise the checkpoint path with small jobs.
      dynamicConfig: [`limit.historyCount.suggestContinueAsNew=${CONTINUE_AS_NEW_EVENTS}`],
      log: (m) => process.stderr.write(`${m}\n`),
    })
  : null;
const code = await new Promise<number>((done) => {
  const child = spawn(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...files], {
    stdio: "inherit",
    env: { ...process.env, ...(server ? { SAGE_TEST_ADDRESS: server.address } : {}), SAGE_TEST_DIR: dir, SAGE_REPO: resolve(".") },
  });
  child.on("exit", (c, signal) => done(c ?? (signal ? 1 : 0)));
});
await server?.stop();
process.exit(code);
