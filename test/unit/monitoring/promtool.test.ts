/**
 * The exported rules under Prometheus' own tool: `promtool check rules` accepts them, and `promtool
 * test rules` runs test/fixtures/alerts/design-rules.test.yml against them (each design rule fires
 * on a breaking series, stays quiet on a good one). Needs promtool (scripts/install-prometheus.sh).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseConfig } from "../../../core/config/schema.js";
import { alertRulesYaml } from "../../../monitoring/alert-rules.js";

const FIXTURE = resolve("test", "fixtures", "alerts", "design-rules.test.yml");

function promtool(args: string[], cwd: string) {
  const r = spawnSync("promtool", args, { cwd, encoding: "utf8" });
  if (r.error) throw new Error(`promtool is not installed (run scripts/install-prometheus.sh): ${r.error.message}`);
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}` };
}

/** A folder holding the rules for `alerts` as sage-rules.yml and the committed test file beside them. */
function rulesDir(alerts: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "sage-rules-"));
  writeFileSync(join(dir, "sage-rules.yml"), alertRulesYaml(parseConfig({ monitoring: { alerts } }).monitoring.alerts));
  copyFileSync(FIXTURE, join(dir, "design-rules.test.yml"));
  return dir;
}

test("promtool check rules accepts the export", () => {
  const r = promtool(["check", "rules", "sage-rules.yml"], rulesDir());
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS: 6 rules found/);
});

test("promtool test rules: each design rule fires on a breaking series and stays quiet on a good one", () => {
  const r = promtool(["test", "rules", "design-rules.test.yml"], rulesDir());
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});

test("the same test fails when the config moves the thresholds past the breaking series", () => {
  // 5 records/s is no longer under the throughput threshold, and a p99 of 995 ms no longer over the latency one.
  const r = promtool(["test", "rules", "design-rules.test.yml"], rulesDir({ "min-throughput": 4, "max-latency-p99": "1s" }));
  assert.notEqual(r.code, 0, r.out);
  assert.match(r.out, /alertname: SageThroughputLow/);
  assert.match(r.out, /alertname: SageLatencyP99High/);
});

test("sage alerts export --out writes what promtool accepts; a bad threshold exits 2 naming the key", () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-export-"));
  const sage = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [resolve("bin", "sage.js"), ...args], { cwd: dir, env: { ...process.env, ...env }, encoding: "utf8" });
  const ok = sage(["alerts", "export", "--out", "rules.yml"], { SAGE_MONITORING_ALERTS_MAX_DEAD_LETTERS: "10" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(readFileSync(join(dir, "rules.yml"), "utf8"), /increase\(sage_operator_dead_letters_total\[5m\]\)\) > 10/);
  assert.equal(promtool(["check", "rules", "rules.yml"], dir).code, 0);
  const dash = sage(["dashboard", "export"]);
  assert.equal(dash.status, 0, dash.stderr);
  assert.equal((JSON.parse(dash.stdout) as { uid: string }).uid, "sage-overview");
  const bad = sage(["alerts", "export"], { SAGE_MONITORING_ALERTS_MAX_LLM_COST_PER_HOUR: "ten dollars" });
  assert.equal(bad.status, 2);
  assert.match(
    bad.stderr,
    /monitoring\.alerts\.max-llm-cost-per-hour = "ten dollars" \(from environment variable SAGE_MONITORING_ALERTS_MAX_LLM_COST_PER_HOUR\): expected a number of USD per hour/,
  );
  assert.equal(bad.stdout, "");
});
