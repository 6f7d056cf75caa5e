/**
 * Temporal TLS, mTLS and API keys against the real dev server. The dev server has no TLS option,
 * so a TLS-terminating gRPC proxy (test/support/grpc-tls-proxy.ts) stands in front of the suite's
 * server: the client and the worker speak TLS to it, verify its certificate against a CA made for
 * the test, and present a client certificate when it requires one. The dev server itself ignores
 * API keys; the proxy checks them, as a cloud gateway would.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import { ConfigError, ServerUnavailableError } from "../../core/errors.js";
import { SageClient } from "../../client/sage-client.js";
import { createLogger } from "../../client/logger.js";
import { createSageWorker } from "../../worker/sage-worker.js";
import type { SageConfig } from "../../core/config/schema.js";
import { cliEnv, readJsonl, REPO, runJob, sageCliBackground, testAddress, testConfig, type CliResult } from "../support/harness.js";
import { generateTestCertificates, type TestCertificates } from "../support/tls-certificates.js";
import { startGrpcTlsProxy, type GrpcTlsProxy, type GrpcTlsProxyOptions } from "../support/grpc-tls-proxy.js";

const SERVER_NAME = "temporal.sage.test";
const API_KEY = "sage-test-key-1";

const doubled = definePipeline("tls-doubled", (env) =>
  env
    .fromCollection([1, 2, 3], { name: "nums" })
    .map((x) => x * 2, { name: "double" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

let certs: TestCertificates;
const proxies: GrpcTlsProxy[] = [];
before(() => {
  certs = generateTestCertificates(SERVER_NAME);
});
after(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  rmSync(certs.dir, { recursive: true, force: true });
});

async function proxy(options: Partial<GrpcTlsProxyOptions> = {}): Promise<GrpcTlsProxy> {
  const p = await startGrpcTlsProxy({ upstream: testAddress(), cert: certs.serverCert, key: certs.serverKey, ...options });
  proxies.push(p);
  return p;
}

/** A test config pointing at `p`, trusting the test CA under the certificate's name. */
function tlsConfig(label: string, p: GrpcTlsProxy, overrides: Record<string, unknown> = {}): SageConfig & { dir: string } {
  return testConfig(label, { "temporal.address": p.address, "temporal.tls.ca": certs.ca, "temporal.tls.server-name": SERVER_NAME, ...overrides });
}

/** Runs `sage <args>` without blocking this process, whose event loop serves the proxy. */
async function sageCliAsync(args: string[], env: Record<string, string>): Promise<CliResult> {
  const child = sageCliBackground(args, { cwd: REPO, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((done) => child.once("exit", (c) => done(c ?? 1)));
  return { code, stdout, stderr };
}

/** The error `createSageWorker` fails with (the worker's native connection fails fast, unlike the client's 5 s deadline). */
async function workerError(config: SageConfig): Promise<Error> {
  const worker = await createSageWorker({ pipeline: doubled, config, logger: createLogger("warn") }).catch((err: Error) => err);
  if (!(worker instanceof Error)) {
    await worker.shutdown();
    assert.fail("the worker connected");
  }
  return worker;
}

test("mTLS: a job runs through a TLS-only frontend that requires a client certificate", async () => {
  const p = await proxy({ clientCa: certs.ca });
  const config = tlsConfig("tls-mtls", p, { "temporal.tls.cert": certs.clientCert, "temporal.tls.key": certs.clientKey });
  const output = join(config.dir, "out.jsonl");
  await runJob(doubled, config, { output });
  assert.deepEqual(readJsonl(output), [2, 4, 6]);
  // The worker (native connection) polled and the client (grpc-js) started the job, both over TLS with our certificate.
  const paths = new Set(p.calls.map((c) => c.path.split("/").pop()));
  for (const rpc of ["PollWorkflowTaskQueue", "StartWorkflowExecution"]) assert.ok(paths.has(rpc), `the proxy saw no ${rpc}: ${[...paths].join(", ")}`);
  assert.ok(p.calls.every((c) => c.clientCertSubject === "sage worker" && /^TLSv1\.[23]$/.test(c.protocol ?? "")));
  assert.deepEqual(p.handshakeErrors, []);

  // Without the client certificate the proxy refuses the handshake.
  const anonymous = await workerError(tlsConfig("tls-anonymous", p));
  assert.ok(anonymous instanceof ServerUnavailableError);
  assert.match(
    anonymous.message,
    new RegExp(`TLS to the Temporal server at ${p.address} failed: the server requires a client certificate.*temporal\\.tls\\.cert`),
  );
  assert.ok(p.handshakeErrors.some((e) => /peer did not return a certificate/.test(e)));
});

test("sage run with the TLS settings from SAGE_TEMPORAL_TLS_* reaches a TLS-only frontend (no dev server started)", async () => {
  const p = await proxy({ clientCa: certs.ca });
  const config = testConfig("tls-cli");
  const output = join(config.dir, "out.jsonl");
  const r = await sageCliAsync(
    ["run", "examples/wordcount/pipeline.ts", "--param", "input=examples/wordcount/input.txt", "--param", `output=${output}`, "--json"],
    {
      ...cliEnv(config),
      SAGE_TEMPORAL_ADDRESS: p.address,
      SAGE_TEMPORAL_TLS_CA: certs.ca,
      SAGE_TEMPORAL_TLS_SERVER_NAME: SERVER_NAME,
      SAGE_TEMPORAL_TLS_CERT: certs.clientCert,
      SAGE_TEMPORAL_TLS_KEY: certs.clientKey,
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.ok(readJsonl(output).length > 0);
  assert.ok(p.calls.some((c) => c.path.endsWith("/StartWorkflowExecution") && c.clientCertSubject === "sage worker"));
});

test("TLS: a CA, a server name or a plaintext client that does not fit is refused with the reason", async () => {
  const p = await proxy();
  const untrusted = await workerError(tlsConfig("tls-other-ca", p, { "temporal.tls.ca": certs.otherCa }));
  assert.match(
    untrusted.message,
    new RegExp(`TLS to the Temporal server at ${p.address} failed: the server's certificate is not trusted .*temporal\\.tls\\.ca`),
  );
  const wrongName = await workerError(tlsConfig("tls-name", p, { "temporal.tls.server-name": "other.sage.test" }));
  assert.match(wrongName.message, /certificate is for DNS:temporal\.sage\.test, not "other\.sage\.test"; set temporal\.tls\.server-name/);
  // A plaintext client cannot talk to the proxy: the calls above and below never reached the server.
  const plain = await workerError(testConfig("tls-plain", { "temporal.address": p.address }));
  assert.match(plain.message, new RegExp(`no Temporal server answers at ${p.address}`));
  assert.deepEqual(p.calls, []);
});

test("an expired server certificate: client and worker fail within the connect timeout, naming the address and the expiry", async () => {
  const p = await proxy({ cert: certs.expiredServerCert });
  const config = tlsConfig("tls-expired", p);
  const expired = new RegExp(
    `TLS to the Temporal server at ${p.address} failed: the server's certificate \\(${SERVER_NAME}\\) expired on Jan  2 00:00:00 2020 GMT`,
  );
  await assert.rejects(SageClient.connect({ config }), (err: Error) => err instanceof ServerUnavailableError && expired.test(err.message));
  assert.match((await workerError(config)).message, expired);
  assert.deepEqual(p.calls, []);
});

test("a missing certificate file, or a cert without its key, is a config error naming the key", async () => {
  const p = await proxy({ clientCa: certs.ca });
  const missing = join(certs.dir, "no-such-client.pem");
  const config = tlsConfig("tls-missing", p, { "temporal.tls.cert": missing, "temporal.tls.key": certs.clientKey });
  const named = (err: Error) => err instanceof ConfigError && err.message.includes(`temporal.tls.cert = "${missing}": cannot read file (ENOENT)`);
  await assert.rejects(SageClient.connect({ config }), named);
  await assert.rejects(createSageWorker({ pipeline: doubled, config, logger: createLogger("warn") }), named);
  const keyless = tlsConfig("tls-keyless", p, { "temporal.tls.cert": certs.clientCert });
  await assert.rejects(
    SageClient.connect({ config: keyless }),
    (err: Error) => err instanceof ConfigError && /temporal\.tls\.cert is set but temporal\.tls\.key is not/.test(err.message),
  );
  assert.deepEqual(p.calls, []);
});

test("API key: it arrives as the authorization header; a wrong one is refused by the proxy", async () => {
  const p = await proxy({ apiKey: API_KEY });
  const config = tlsConfig("tls-api-key", p, { "temporal.api-key": API_KEY });
  const output = join(config.dir, "out.jsonl");
  await runJob(doubled, config, { output });
  assert.deepEqual(readJsonl(output), [2, 4, 6]);
  assert.ok(p.calls.some((c) => c.path.endsWith("/PollWorkflowTaskQueue")));
  assert.ok(p.calls.every((c) => c.authorization === `Bearer ${API_KEY}` && !c.refused));

  const wrong = tlsConfig("tls-wrong-key", p, { "temporal.api-key": "not-the-key" });
  const refused = new RegExp(`the Temporal server at ${p.address} refused the credentials .*check temporal\\.api-key`);
  await assert.rejects(SageClient.connect({ config: wrong }), (err: Error) => err instanceof ConfigError && refused.test(err.message));
  assert.match((await workerError(wrong)).message, refused);
  assert.ok(p.calls.some((c) => c.authorization === "Bearer not-the-key" && c.refused));
});
