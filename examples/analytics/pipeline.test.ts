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
import { latenessOf, referenceAlerts, referenceStats, WINDOW } from "./reference.js";
import type { MetricEvent, WindowStats } from "./statistics.js";
import type { InjectedAnomaly } from "./traffic.js";

const byWindow = (a: { service: string; end: number }, b: { service: string; end: number }) =>
  a.service < b.service ? -1 : a.service > b.service ? 1 : a.end - b.end;
const byAlert = (a: Alert, b: Alert) =>
  byWindow({ service: a.service, end: a.window.end }, { service: b.service, end: b.window.end }) || (a.metric < b.metric ? -1 : 1);

/** True when `alert`'s window holds part of `anomaly`. */
function overlaps(alert: Alert, anomaly: InjectedAnomaly): boolean {
  return alert.service === anomaly.service && alert.window.start < anomaly.end && anomaly.start < alert.window.end;
}

/**
 * Each window's statistics must equal the reference's. Events far behind the stream (the late ones)
 * may miss the windows that fired before they came, so a window that holds one is only bounded:
 * its count lies between the reference without them and the reference with them.
 */
function checkStats(got: WindowStats[], events: MetricEvent[]): { exact: number; bounded: number } {
  const lateness = latenessOf(events);
  const id = (s: WindowStats) => `${s.service}@${s.end}`;
  const onTime = new Map(referenceStats(events.filter((_, i) => lateness[i]! <= WINDOW.outOfOrdernessMs)).map((s) => [id(s), s]));
  const all = new Map(referenceStats(events).map((s) => [id(s), s]));
  const gotIds = new Set(got.map(id));
  assert.equal(gotIds.size, got.length, "no window emitted twice");
  for (const w of onTime.keys()) assert.ok(gotIds.has(w), `window ${w} is missing`);
  let exact = 0;
  let bounded = 0;
  for (const s of got) {
    const upper = all.get(id(s));
    assert.ok(upper, `window ${id(s)} holds no event`);
    const lower = onTime.get(id(s));
    if (lower && lower.count === upper.count) {
      assert.deepEqual(s, upper, `window ${id(s)}`);
      exact++;
    } else {
      assert.ok(s.count >= (lower?.count ?? 1) && s.count <= upper.count, `window ${id(s)}: ${s.count} events`);
      assert.ok(s.min >= upper.min && s.max <= upper.max, `window ${id(s)}: latencies ${s.min}..${s.max}`);
      bounded++;
    }
  }
  return { exact, bounded };
}

test("examples/analytics: every injected anomaly raises an alert, normal traffic none, and the windows equal the reference", () => {
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
  const { exact, bounded } = checkStats(gotStats, events);
  assert.ok(exact > 0 && bounded > 0, `windows checked exactly: ${exact}, with late events: ${bounded}`);

  const gotAlerts = readJsonl<Alert>(alerts).sort(byAlert);
  // The detector in the job saw the same windows, per service in order, as the reference does.
  assert.deepEqual(gotAlerts, referenceAlerts(gotStats).sort(byAlert));
  for (const a of anomalies)
    assert.ok(
      gotAlerts.some((alert) => overlaps(alert, a)),
      `no alert for ${JSON.stringify(a)}`,
    );
  for (const alert of gotAlerts)
    assert.ok(
      anomalies.some((a) => overlaps(alert, a)),
      `alert on normal traffic: ${JSON.stringify(alert)}`,
    );
});
