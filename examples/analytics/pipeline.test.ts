/**
 * The analytics example run for real, bounded: `generate.ts` writes traffic with injected anomalies
 * and late events, `sage run` runs the job on the dev server, and its output is held against the
 * plain reference (`reference.ts`) and against the anomalies that were injected.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, cliEnv, readJsonl, sageCli, testConfig } from "../../test/support/harness.js";
import type { Alert } from "./anomaly-detector.js";
import { byAlert, byWindow, compareWindows, matchAlerts, referenceAlerts } from "./reference.js";
import type { MetricEvent, WindowStats } from "./statistics.js";
import type { InjectedAnomaly } from "./traffic.js";

test("examples/analytics: every injected anomaly raises an alert, normal traffic none, and the windows equal the reference", (t) => {
  const config = testConfig("analytics");
  const input = join(config.dir, "metrics.jsonl");
  const generated = spawnSync(
    process.execPath,
    ["--import", "tsx", "examples/analytics/generate.ts", "--out", input, "--minutes", "40", "--services", "10", "--seed", "7"],
    { cwd: REPO, encoding: "utf8", timeout: 120_000 },
  );
  assert.equal(generated.status, 0, generated.stderr);
  const anomalies = JSON.parse(readFileSync(join(config.dir, "metrics.anomalies.json"), "utf8")) as InjectedAnomaly[];
  const events = readJsonl<MetricEvent>(input);
  assert.equal(anomalies.length, 3);
  assert.match(generated.stdout, /\(([1-9]\d*) late\)/, "the input has late events");

  const stats = join(config.dir, "stats.jsonl");
  const alerts = join(config.dir, "alerts.jsonl");
  const run = sageCli(
    ["run", "examples/analytics/pipeline.ts", "--param", `input=${input}`, "--param", `stats=${stats}`, "--param", `alerts=${alerts}`, "--json"],
    {
      env: cliEnv(config),
      timeoutMs: 600_000,
    },
  );
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim().split("\n").pop()!) as { phase: string; counts: Record<string, { in: number; out: number }> };
  assert.equal(result.phase, "done");
  assert.equal(result.counts["metrics"]?.out, events.length);

  const gotStats = readJsonl<WindowStats>(stats).sort(byWindow);
  const windows = compareWindows(gotStats, events);
  assert.deepEqual(windows.problems, []);
  assert.ok(windows.exact > 0 && windows.bounded > 0, `windows equal to the reference: ${windows.exact}, with late events: ${windows.bounded}`);

  const gotAlerts = readJsonl<Alert>(alerts).sort(byAlert);
  // The detector in the job saw the same windows, per service in order, as the reference does.
  assert.deepEqual(gotAlerts, referenceAlerts(gotStats).sort(byAlert));
  t.diagnostic(
    `${events.length} events, ${gotStats.length} windows (${windows.exact} equal to the reference, ${windows.bounded} with late events), ${gotAlerts.length} alerts`,
  );
  const { missed, unexpected } = matchAlerts(gotAlerts, anomalies);
  assert.deepEqual(missed, [], "every injected anomaly raises an alert");
  assert.deepEqual(unexpected, [], "no alert on normal traffic");
});
