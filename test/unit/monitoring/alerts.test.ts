/** Unit tests of the alert rules and the dashboard `sage alerts export` / `sage dashboard export` write, and of their thresholds' config. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { parseConfig } from "../../../core/config/schema.js";
import { ConfigError } from "../../../core/errors.js";
import { loadConfig } from "../../../client/config-loader.js";
import { alertRules, alertRulesYaml, promDuration, type RulesFile } from "../../../monitoring/alert-rules.js";
import { dashboard, dashboardJson } from "../../../monitoring/dashboard.js";
import { METRICS } from "../../../monitoring/names.js";

const defaults = parseConfig({}).monitoring.alerts;

function rule(file: RulesFile, name: string) {
  const r = file.groups[0]!.rules.find((x) => x.alert === name);
  assert.ok(r, `rule ${name}`);
  return r;
}

test("the design's two rules: throughput under 1000 records/s for 5m is a warning, p99 over 500 ms for 2m is critical", () => {
  const rules = alertRules(defaults);
  const throughput = rule(rules, "SageThroughputLow");
  assert.equal(throughput.expr, "sum by (pipeline, job_id) (rate(sage_shim_records_total[1m])) < 1000");
  assert.equal(throughput.for, "5m");
  assert.equal(throughput.labels.severity, "warning");
  const latency = rule(rules, "SageLatencyP99High");
  assert.equal(latency.expr, "histogram_quantile(0.99, sum by (pipeline, job_id, le) (rate(sage_end_to_end_latency_seconds_bucket[1m]))) > 0.5");
  assert.equal(latency.for, "2m");
  assert.equal(latency.labels.severity, "critical");
  assert.deepEqual(
    rules.groups[0]!.rules.map((r) => r.alert),
    ["SageThroughputLow", "SageLatencyP99High", "SageDeadLetters", "SageConsumerLagHigh", "SageCheckpointFailures", "SageLlmSpendHigh"],
  );
});

test("thresholds come from monitoring.alerts.* in the config, file or environment", () => {
  const t = parseConfig({
    monitoring: { alerts: { "min-throughput": "250", "throughput-for": "90s", "max-latency-p99": "1.5s", "latency-for": "1m", "max-llm-cost-per-hour": 2.5 } },
  }).monitoring.alerts;
  const rules = alertRules(t);
  assert.match(rule(rules, "SageThroughputLow").expr, / < 250$/);
  assert.equal(rule(rules, "SageThroughputLow").for, "90s");
  assert.match(rule(rules, "SageLatencyP99High").expr, / > 1\.5$/);
  assert.equal(rule(rules, "SageLatencyP99High").for, "1m");
  assert.match(rule(rules, "SageLlmSpendHigh").expr, /increase\(sage_llm_cost_usd_total\[1h\]\)\) > 2\.5$/);
  const fromEnv = loadConfig({ env: { SAGE_MONITORING_ALERTS_MAX_CONSUMER_LAG: "5000" } }).monitoring.alerts;
  assert.match(rule(alertRules(fromEnv), "SageConsumerLagHigh").expr, /sum by \(pipeline, job_id\) \(sage_consumer_lag_records\) > 5000$/);
});

test("the YAML export parses back to the same rules", () => {
  const text = alertRulesYaml(defaults);
  assert.match(text, /^# Sage alert rules/);
  assert.deepEqual(parse(text), alertRules(defaults));
});

test("a threshold that is not a number is a config error naming the key, its value and where it came from", () => {
  assert.throws(
    () => loadConfig({ env: { SAGE_MONITORING_ALERTS_MIN_THROUGHPUT: "lots" } }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        /monitoring\.alerts\.min-throughput = "lots" \(from environment variable SAGE_MONITORING_ALERTS_MIN_THROUGHPUT\): expected a number of records per second/,
      );
      return true;
    },
  );
  assert.throws(() => parseConfig({ monitoring: { alerts: { "max-dead-letters": "" } } }), /monitoring\.alerts\.max-dead-letters = "": expected a number/);
  assert.throws(() => parseConfig({ monitoring: { alerts: { "max-consumer-lag": -1 } } }), /monitoring\.alerts\.max-consumer-lag = -1: expected a number/);
  assert.throws(
    () => parseConfig({ monitoring: { alerts: { "max-latency-p99": "fast" } } }),
    /monitoring\.alerts\.max-latency-p99 = "fast": expected a duration/,
  );
  assert.throws(() => parseConfig({ monitoring: { alerts: { "min-througput": 5 } } }), /unknown config key "monitoring\.alerts\.min-througput"/);
});

test("monitoring defaults: /metrics on 9091, a port in use fails, the SDK exporter on its own port", () => {
  const m = parseConfig({}).monitoring;
  assert.equal(m.enabled, true);
  assert.equal(m.port, 9091);
  assert.equal(m.host, "127.0.0.1");
  assert.equal(m["port-in-use"], "fail");
  assert.equal(m["sdk-metrics"], true);
  assert.equal(m["sdk-port"], undefined);
  assert.throws(() => parseConfig({ monitoring: { "port-in-use": "retry" } }), /monitoring\.port-in-use = "retry"/);
  assert.throws(() => parseConfig({ monitoring: { port: 70000 } }), /monitoring\.port = 70000/);
});

test("Prometheus durations", () => {
  assert.equal(promDuration(300_000), "5m");
  assert.equal(promDuration(7_200_000), "2h");
  assert.equal(promDuration(90_000), "90s");
  assert.equal(promDuration(500), "500ms");
});

/** Every `sage_` name a query uses, without a histogram's `_bucket`. */
function sageNames(exprs: string[]): Set<string> {
  return new Set(exprs.flatMap((e) => [...e.matchAll(/\b(sage_[a-z_]+)/g)].map((m) => m[1]!.replace(/_bucket$/, ""))));
}

test("the dashboard charts every Sage metric, and only names that exist", () => {
  const d = dashboard(defaults);
  const exprs = d.panels.flatMap((p) => ("targets" in p ? p.targets.map((t) => t.expr) : []));
  const used = sageNames(exprs);
  const known = new Set<string>([...Object.values(METRICS), "sage_process_process_cpu_seconds_total", "sage_process_process_resident_memory_bytes"]);
  for (const name of used) assert.ok(known.has(name), `dashboard uses ${name}, which no metric defines`);
  for (const name of Object.values(METRICS)) assert.ok(used.has(name), `dashboard has no panel for ${name}`);
  for (const name of sageNames(alertRules(defaults).groups[0]!.rules.map((r) => r.expr))) assert.ok(known.has(name), `a rule uses ${name}`);
});

test("the dashboard draws the alert thresholds on their panels and filters by pipeline and job", () => {
  const t = parseConfig({ monitoring: { alerts: { "min-throughput": 321 } } }).monitoring.alerts;
  const d = dashboard(t);
  const panel = d.panels.find((p) => p.title === "Records read per second");
  assert.ok(panel && "targets" in panel && panel.fieldConfig.defaults.thresholds);
  assert.equal(panel.fieldConfig.defaults.thresholds.steps[1]!.value, 321);
  assert.equal(panel.targets[0]!.expr, 'sum by (pipeline, job_id) (rate(sage_shim_records_total{pipeline=~"$pipeline", job_id=~"$job"}[1m]))');
  assert.deepEqual(
    d.templating.list.map((v) => v.name),
    ["datasource", "pipeline", "job"],
  );
  const parsed = JSON.parse(dashboardJson(t)) as { uid: string; panels: Array<{ id: number }> };
  assert.equal(parsed.uid, "sage-overview");
  assert.equal(new Set(parsed.panels.map((p) => p.id)).size, parsed.panels.length, "panel ids are unique");
});
