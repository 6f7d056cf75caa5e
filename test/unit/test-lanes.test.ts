/** Unit tests of the test runner's lanes: lane files run side by side, an alone file by itself, failures count. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aloneReason, runInLanes } from "../../scripts/test-lanes.js";

/** A test file that marks its start, waits until every file of `waitFor` has started, then marks its end. */
function laneFile(dir: string, name: string, waitFor: string[], extra = ""): string {
  const path = join(dir, `${name}.test.mjs`);
  writeFileSync(
    path,
    `${extra}
import { test } from "node:test";
import { existsSync, writeFileSync } from "node:fs";
test("${name}", async () => {
  writeFileSync(${JSON.stringify(join(dir, `${name}.started`))}, "");
  const guard = Date.now() + 60_000; // a hang guard, not a timing assertion
  for (const other of ${JSON.stringify(waitFor.map((w) => join(dir, `${w}.started`)))}) {
    while (!existsSync(other)) {
      if (Date.now() > guard) throw new Error("never saw " + other + " start");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  writeFileSync(${JSON.stringify(join(dir, `${name}.ended`))}, "");
});
`,
  );
  return path;
}

/** Whether process `pid` has ended, waiting up to 20 s for it (a hang guard, not a timing assertion). */
async function gone(pid: number): Promise<boolean> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  const guard = Date.now() + 20_000;
  while (alive() && Date.now() < guard) await new Promise((r) => setTimeout(r, 50));
  return !alive();
}

test("two lane files run side by side; an alone file runs after them, by itself; a failed file fails the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lanes-"));
  // Each of a and b waits until the other has started: with one file at a time, they would never end.
  const a = laneFile(dir, "a", ["b"]);
  const b = laneFile(dir, "b", ["a"]);
  const alone = join(dir, "alone.test.mjs");
  const ended = ["a", "b"].map((n) => join(dir, `${n}.ended`));
  writeFileSync(
    alone,
    // The marker is spelt in two parts here so that this file itself does not carry it.
    `// @runs-${"alone"}
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
test("alone", () => assert.deepEqual(${JSON.stringify(ended)}.map(existsSync), [true, true], "the lane files ended before it began"));
`,
  );
  const failing = join(dir, "failing.test.mjs");
  writeFileSync(failing, `import { test } from "node:test";\ntest("fails", () => { throw new Error("as it should"); });\n`);
  let out = "";
  const code = await runInLanes([alone, a, b, failing], {
    lanes: 2,
    nodeArgs: ["--test-force-exit", "--test-reporter=spec"],
    env: process.env,
    write: (t) => (out += t),
  });
  assert.equal(code, 1, out);
  for (const f of [a, b, alone]) assert.match(out, new RegExp(`✔ ${f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: passed in`), out);
  assert.match(out, new RegExp(`✖ ${failing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: failed \\(exit 1\\)`), out);
  assert.match(out, /as it should/);
  // The failure's own lines come again after the durations, where the run's tail shows them.
  const tail = out.slice(out.indexOf("slowest first"));
  assert.match(tail, /── why \S*failing\.test\.mjs failed[^\n]*\n(  \| [^\n]*\n)*  \| [^\n]*as it should/, tail);
  assert.match(out, /failed files:\n {2}\S*failing\.test\.mjs/);
  assert.match(out, /alone\.test\.mjs \(alone: marked @runs-[a]lone\)/);
});

test("a file runs alone when it kills the shared broker, starts a cluster, measures memory or runs the models", () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lanes-"));
  const file = (name: string, text: string): string => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  // The calls are spelt in parts here so that this file itself does not make them (it would run alone).
  assert.equal(aloneReason(file("kill.test.ts", `const broker = ${"testBroker"}();\nbroker.kill();`)), "kills and restarts the shared broker");
  assert.equal(aloneReason(file("cluster.test.ts", `cluster = ${"startCluster"}({ ports });`)), "starts a broker cluster of its own");
  assert.equal(aloneReason(file("rss.test.ts", `samples.push(shim.${"rssKb"}());`)), "measures a process's memory");
  assert.equal(aloneReason(file("llm.test.ts", `before(async () => (models = await ${"startModelServerProcess"}()));`)), "runs the local models");
  assert.equal(aloneReason(file("plain.test.ts", "const kafka = testKafka();")), null);
});

test("a file past its time limit is stopped with the processes it started, and fails the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lanes-"));
  const pidFile = join(dir, "grandchild.pid");
  const hanging = join(dir, "hanging.test.mjs");
  // It starts a process of its own (as a test starts a worker), then never ends.
  writeFileSync(
    hanging,
    `import { test } from "node:test";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
test("hangs", async () => {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
  await new Promise(() => setInterval(() => {}, 1000));
});
`,
  );
  let out = "";
  const code = await runInLanes([hanging], { lanes: 1, nodeArgs: ["--test-reporter=spec"], env: process.env, write: (t) => (out += t), fileLimitS: 3 });
  assert.equal(code, 1, out);
  assert.match(out, /still running after its limit of 3 s: stopping it/, out);
  assert.match(out, /hanging\.test\.mjs: timed out after 3 s in/, out);
  assert.match(out.slice(out.indexOf("slowest first")), /\(stopped: timed out after 3 s\)/, out);
  const pid = Number(readFileSync(pidFile, "utf8"));
  // The process the file started went with it (SIGTERM to the file's process group).
  assert.equal(await gone(pid), true, `process ${pid}, started by the stopped file, still runs`);
});

test("a file that kills its broker, given one of its own, runs in a lane beside another file, and its broker stops after it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lanes-"));
  // The killer waits for the other lane file to start (it would never end if it ran alone) and sees its own broker.
  const killer = laneFile(
    dir,
    "killer",
    ["other"],
    // It also "restarts" its broker: a process of its own group, as scripts/kafka.sh's would be.
    `// ${"testBroker"}() below, in the real files\nif (process.env.SAGE_TEST_KAFKA !== "own:1") throw new Error("not its own broker: " + process.env.SAGE_TEST_KAFKA);
import { spawn as spawnBroker } from "node:child_process";
import { writeFileSync as writeBrokerPid } from "node:fs";
const restarted = spawnBroker(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
restarted.unref();
writeBrokerPid(${JSON.stringify(join(dir, "broker.pid"))}, String(restarted.pid));`,
  );
  const other = laneFile(dir, "other", ["killer"], `if (process.env.SAGE_TEST_KAFKA !== "shared:1") throw new Error("not the shared broker");`);
  const events: string[] = [];
  let out = "";
  const code = await runInLanes([other, killer], {
    lanes: 2,
    nodeArgs: ["--test-force-exit", "--test-reporter=spec"],
    env: { ...process.env, SAGE_TEST_KAFKA: "shared:1" },
    write: (t) => (out += t),
    ownBroker: async (file) => {
      events.push(`start ${file}`);
      return { env: { SAGE_TEST_KAFKA: "own:1" }, stop: () => events.push(`stop ${file}`), pid: () => Number(readFileSync(join(dir, "broker.pid"), "utf8")) };
    },
  });
  assert.equal(code, 0, out);
  assert.deepEqual(events, [`start ${killer}`, `stop ${killer}`]);
  // Its restarted broker is no leftover to warn of, but it is gone with the file.
  assert.doesNotMatch(out, /left \d+ process/, out);
  assert.equal(await gone(Number(readFileSync(join(dir, "broker.pid"), "utf8"))), true, "the file's restarted broker still runs");
  assert.match(out, /killer\.test\.mjs \(a broker of its own\)/, out);
  assert.doesNotMatch(out, /\(alone/, out);
  // Without brokers to hand out, it runs alone on the shared one (and the other file never starts beside it).
  assert.equal(aloneReason(killer), "kills and restarts the shared broker");
  assert.equal(aloneReason(killer, true), null);
});

test("a process a file left running when it ended is named and killed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-lanes-"));
  const pidFile = join(dir, "left.pid");
  const leaving = join(dir, "leaving.test.mjs");
  // It starts a process of its own (as a test starts a worker), does not stop it, and passes.
  writeFileSync(
    leaving,
    `import { test } from "node:test";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
test("leaves a process", () => {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  child.unref();
  writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
});
`,
  );
  let out = "";
  const code = await runInLanes([leaving], { lanes: 1, nodeArgs: ["--test-force-exit", "--test-reporter=spec"], env: process.env, write: (t) => (out += t) });
  assert.equal(code, 0, out);
  const pid = Number(readFileSync(pidFile, "utf8"));
  assert.match(out, new RegExp(`leaving\\.test\\.mjs left 1 process\\(es\\) running, now killed: ${pid} `), out);
  assert.equal(await gone(pid), true, `process ${pid}, left by the file, still runs`);
});
