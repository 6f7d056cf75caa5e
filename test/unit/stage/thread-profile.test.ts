/**
 * Unit tests of a stage thread's CPU profile (`thread-profile.ts`): where `--cpu-prof` puts it, and
 * that a thread given that directory writes a profile with samples when asked.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { cpuProfileDir } from "../../../activities/stage/thread-profile.js";

test("cpuProfileDir reads --cpu-prof and --cpu-prof-dir as node does", () => {
  assert.equal(cpuProfileDir([]), null);
  assert.equal(cpuProfileDir(["--cpu-prof-dir=/p"]), null, "a directory without --cpu-prof profiles nothing");
  assert.equal(cpuProfileDir(["--cpu-prof"]), ".");
  assert.equal(cpuProfileDir(["--cpu-prof", "--cpu-prof-dir=/p"]), "/p");
  assert.equal(cpuProfileDir(["--cpu-prof-dir", "/q", "--cpu-prof"]), "/q");
});

test("a thread given a profile directory writes its own profile when asked, though it is then terminated", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-thread-profile-"));
  try {
    const module = new URL("../../../activities/stage/thread-profile.ts", import.meta.url).href;
    // The thread registers the TypeScript loader first, as the pool's entry does (stage-thread-entry.mjs).
    const code = `(async () => {
      (await import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})).register();
      const { parentPort } = await import("node:worker_threads");
      const { profileThisThread } = await import(${JSON.stringify(module)});
      const write = profileThisThread(${JSON.stringify(dir)});
      let x = 0;
      for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
      parentPort.postMessage(await write());
      setInterval(() => {}, 1000);
    })();`;
    // Without the parent's flags, as the pool starts its threads.
    const worker = new Worker(code, { eval: true, execArgv: [] });
    const file = await new Promise<string>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    const name = `stage-thread-${process.pid}-${worker.threadId}.cpuprofile`;
    await worker.terminate();
    assert.equal(file, join(dir, name));
    const profile = JSON.parse(readFileSync(file, "utf8")) as { nodes: unknown[]; samples: number[] };
    assert.ok(profile.nodes.length > 1 && profile.samples.length > 0, "a profile with samples");
    assert.ok(readdirSync(dir).includes(name));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
