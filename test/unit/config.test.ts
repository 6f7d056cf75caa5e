/** Unit tests of configuration: defaults, units, layering, and errors that name key, value and origin. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { envVarOf, parseConfig } from "../../core/config/schema.js";
import { ConfigError } from "../../core/errors.js";
import { loadConfig } from "../../client/config-loader.js";
import { connectionOptions } from "../../client/connection.js";
import { REDACTED_PATHS } from "../../client/logger.js";
import { freePort, isLocalAddress } from "../../dev/temporal-server.js";

test("defaults follow the SAGE Core YAML and the Temporal dev server", () => {
  const c = parseConfig({});
  assert.equal(c.execution.parallelism, 2);
  assert.equal(c.execution["buffer-timeout"], 50);
  assert.equal(c.temporal["activity-timeout"], 600_000);
  assert.equal(c.temporal.address, "127.0.0.1:7233");
  assert.equal(c.temporal["ui-port"], 8233);
  assert.equal(c["data-dir"], ".sage");
});

test("state.checkpoint-interval is read as a duration (0: only the history budgets checkpoint)", () => {
  assert.equal(parseConfig({}).state["checkpoint-interval"], 0);
  assert.equal(parseConfig({ state: { "checkpoint-interval": "30s" } }).state["checkpoint-interval"], 30_000);
});

test("durations and sizes take units", () => {
  const c = parseConfig({ execution: { "buffer-timeout": "2s", "split-bytes": "1mb", "max-batch-bytes": "256kb" }, temporal: { "activity-timeout": "5m" } });
  assert.equal(c.execution["buffer-timeout"], 2000);
  assert.equal(c.execution["split-bytes"], 1024 * 1024);
  assert.equal(c.execution["max-batch-bytes"], 256 * 1024);
  assert.equal(c.temporal["activity-timeout"], 300_000);
});

test("the SAGE Core keys nothing reads yet are refused, not silently accepted", () => {
  assert.throws(() => parseConfig({ execution: { mode: "BATCH" } }), /unknown config key "execution\.mode"/);
});

test("state.backend is memory or embedded (memory by default); embedded stores sit in state.dir, with local recovery on by default", () => {
  const c = parseConfig({});
  assert.deepEqual([c.state.backend, c.state.dir, c.state["local-recovery"]], ["memory", ".sage/state", true]);
  const e = parseConfig({ state: { backend: "embedded", dir: "/var/sage/state", "local-recovery": "false" } });
  assert.deepEqual([e.state.backend, e.state.dir, e.state["local-recovery"]], ["embedded", "/var/sage/state", false]);
  assert.throws(() => parseConfig({ state: { backend: "rocksdb" } }), /state\.backend = "rocksdb": .*"memory"\|"embedded"/);
  assert.equal(envVarOf("state.local-recovery"), "SAGE_STATE_LOCAL_RECOVERY");
});

test("an unknown key and a bad value are both reported, with key, value and origin", () => {
  assert.throws(
    () => parseConfig({ execution: { parallelism: "many", bogus: 1 } }, new Map([["execution.parallelism", "sage.config.yaml"]])),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /execution\.parallelism = "many" \(from sage\.config\.yaml\): .*expected number/);
      assert.match(err.message, /unknown config key "execution\.bogus"/);
      return true;
    },
  );
  assert.throws(() => parseConfig({ execution: { "buffer-timeout": "soon" } }), /execution\.buffer-timeout = "soon": expected a duration/);
});

test("file < environment < flags, and each error names its origin", () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-config-"));
  const file = join(dir, "sage.config.yaml");
  writeFileSync(file, "execution:\n  parallelism: 3\ntemporal:\n  namespace: from-file\n");
  const c = loadConfig({ file, env: { [envVarOf("temporal.namespace")]: "from-env" }, overrides: { "execution.parallelism": "5" } });
  assert.equal(c.execution.parallelism, 5);
  assert.equal(c.temporal.namespace, "from-env");
  assert.equal(envVarOf("temporal.task-queue"), "SAGE_TEMPORAL_TASK_QUEUE");

  writeFileSync(file, "temporal:\n  adress: 127.0.0.1:7233\n");
  assert.throws(() => loadConfig({ file, env: {} }), new RegExp(`unknown config key "temporal.adress" \\(from ${file.replace(/[.]/g, "\\.")}\\)`));
  assert.throws(() => loadConfig({ file: join(dir, "missing.yaml"), env: {} }), /cannot read config file .*missing\.yaml.*ENOENT/);
  assert.throws(
    () => loadConfig({ env: { SAGE_EXECUTION_PARALLELISM: "0" } }),
    /execution\.parallelism = "0" \(from environment variable SAGE_EXECUTION_PARALLELISM\)/,
  );
});

test("logs redact secrets", () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = pino({ redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, sink);
  log.info({ temporal: { "api-key": "sk-secret-1" }, apiKey: "sk-secret-2", headers: { authorization: "Bearer x" } }, "connect");
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0]!, /sk-secret|Bearer/);
  assert.match(lines[0]!, /\[redacted\]/);
});

test("only loopback addresses count as local (sage run starts a dev server only for those)", () => {
  for (const a of ["127.0.0.1:7233", "localhost:7233", "[::1]:7233", "127.0.0.2:7233"]) assert.equal(isLocalAddress(a), true, a);
  for (const a of ["temporal.example.com:7233", "10.0.0.5:7233", "192.168.1.2:7233"]) assert.equal(isLocalAddress(a), false, a);
});

test("free ports for scratch servers lie below the ephemeral range, bind, and are never handed out twice", async () => {
  const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 40 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length, `a port came back twice: ${ports.join(", ")}`);
  for (const port of ports) assert.ok(port >= 1024 && port < ephemeralLow, `port ${port} is not in [1024, ${ephemeralLow})`);
});

test("temporal TLS: on with an API key unless temporal.tls.enabled is false; false with TLS files is refused", () => {
  const opts = (temporal: Record<string, unknown>) => connectionOptions(parseConfig({ temporal }));
  assert.equal(opts({}).tls, undefined);
  assert.deepEqual(opts({ "api-key": "k" }).tls, {});
  assert.equal(opts({ "api-key": "k" }).apiKey, "k");
  // Plaintext with a key: a local TLS-terminating proxy in front of the server.
  const plain = opts({ "api-key": "k", tls: { enabled: false } });
  assert.equal(plain.tls, undefined);
  assert.equal(plain.apiKey, "k");
  assert.deepEqual(opts({ tls: { enabled: true } }).tls, {});
  const dir = mkdtempSync(join(tmpdir(), "sage-tls-"));
  const ca = join(dir, "ca.pem");
  writeFileSync(ca, "-----BEGIN CERTIFICATE-----\n");
  assert.throws(
    () => opts({ tls: { enabled: false, ca } }),
    (err: unknown) => err instanceof ConfigError && /temporal\.tls\.enabled is false but temporal\.tls\.ca is set/.test(err.message),
  );
});
