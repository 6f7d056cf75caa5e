/**
 * Encrypted history against the real dev server and broker: with `security.encryption` on, a
 * bounded job (workflow input, memo, activity inputs and results) and a streaming job (batch
 * signals, local activity markers with records) leave no clear text of a known record or prompt in
 * the history fetched raw, while their output is right; replay with the codec still replays; the
 * codec server (`sage codec-server`) decodes what the Web UI and the temporal CLI send it.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import proto from "@temporalio/proto";
import { defaultPayloadConverter, type Payload } from "@temporalio/common";
import { definePipeline } from "../../core/api/pipeline.js";
import { FileSink } from "../../core/api/connectors.js";
import { NonRetryableError } from "../../core/errors.js";
import { SageClient } from "../../client/sage-client.js";
import { replayExecution, replayFile } from "../../replay/replay.js";
import { historyToJSON } from "@temporalio/common/lib/proto-utils.js";
import { dataConverterOf } from "../../security/data-converter.js";
import { findTemporalBinary, freePort } from "../../dev/temporal-server.js";
import { PayloadDecryptionError } from "../../security/errors.js";
import type { SageConfig } from "../../core/config/schema.js";
import { cliEnv, readJsonl, runJob, sageCliBackground, scratchDir, startWorker, testConfig, until } from "../support/harness.js";
import { createTopics, readOutput, runStreaming, streamConfig, streamTopics, testKafka, useStreamTopics, waitForRecords } from "../support/kafka.js";
import streamPipeline from "../fixtures/stream-pipeline.js";

type History = proto.temporal.api.history.v1.IHistory;

const RECORD_SECRET = "confidential-record-7f3a9c";
const PROMPT_SECRET = "Summarize the medical chart of Jane Roe";
const TOKEN = `token-${randomBytes(8).toString("hex")}`;
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Two keys: `k-2026` (active, listed first) and `k-2025`; the file and the config overrides that name it. */
function keysFor(dir: string): { file: string; overrides: Record<string, unknown> } {
  const file = join(dir, "keys");
  writeFileSync(file, `# active first\nk-2026=${randomBytes(32).toString("base64")}\nk-2025=${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
  return { file, overrides: { "security.encryption.keys-file": file } };
}

/** A workflow's history straight from the service (no data converter, no codec), every page. */
async function rawHistory(client: SageClient, workflowId: string): Promise<History> {
  const events: proto.temporal.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await client.temporal.workflowService.getWorkflowExecutionHistory({
      namespace: client.config.temporal.namespace,
      execution: { workflowId },
      ...(nextPageToken ? { nextPageToken } : {}),
    });
    events.push(...(page.history?.events ?? []));
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return { events };
}

/** Every payload in `value` with its path (a protobuf message tree). */
function payloadsIn(value: unknown, path = "", out: Array<{ path: string; payload: Payload }> = []) {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) return out;
  if (Array.isArray(value)) {
    value.forEach((v, i) => payloadsIn(v, `${path}[${i}]`, out));
    return out;
  }
  const o = value as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === "object" && o.data instanceof Uint8Array) out.push({ path, payload: o });
  else for (const [k, v] of Object.entries(o)) payloadsIn(v, path ? `${path}.${k}` : k, out);
  return out;
}

/** Where a local activity marker keeps what the SDK core writes about the call (not the activity's input or result). */
const LA_MARKER_DATA = /markerRecordedEventAttributes\.details\.data\./;
const LA_MARKER_FIELDS = ["seq", "attempt", "activity_id", "activity_type", "complete_time", "backoff", "original_schedule_time"];
/** Where a patch marker (`patched()` in workflow code) keeps the patch id, written by the SDK core without the codec. */
const PATCH_MARKER_DATA = /markerRecordedEventAttributes\.details\.patch-data\./;
const PATCH_MARKER_FIELDS = ["id", "deprecated"];

const encodingOf = (p: Payload) => Buffer.from(p.metadata?.encoding ?? new Uint8Array()).toString();

/**
 * The raw history holds neither secret anywhere in its bytes; every payload but the search
 * attributes (clear by design, for filtering) is encrypted with the active key. Returns the count.
 */
function assertEncrypted(history: History, what: string): number {
  const bytes = Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish());
  for (const secret of [RECORD_SECRET, PROMPT_SECRET]) assert.ok(!bytes.includes(Buffer.from(secret)), `${what}: "${secret}" in clear in the raw history`);
  const all = payloadsIn(history);
  const ours = all.filter(({ path }) => !/searchAttributes/.test(path) && !LA_MARKER_DATA.test(path) && !PATCH_MARKER_DATA.test(path));
  const clear = ours.filter(({ payload }) => encodingOf(payload) !== "binary/encrypted");
  assert.deepEqual(
    clear.map((c) => `${c.path}: ${encodingOf(c.payload)}`),
    [],
    `${what}: payloads written in clear`,
  );
  for (const { payload } of ours) assert.equal(Buffer.from(payload.metadata!["encryption-key-id"]!).toString(), "k-2026");
  // The SDK core writes a local activity marker's bookkeeping itself, without the codec: ids, attempt,
  // times; and a patch marker's patch id. Nothing else may be in them.
  for (const [marker, allowed] of [
    [LA_MARKER_DATA, LA_MARKER_FIELDS],
    [PATCH_MARKER_DATA, PATCH_MARKER_FIELDS],
  ] as const) {
    for (const { path, payload } of all.filter(({ path }) => marker.test(path))) {
      const fields = Object.keys(defaultPayloadConverter.fromPayload<object>(payload)).sort();
      assert.ok(
        fields.every((f) => (allowed as readonly string[]).includes(f)),
        `${path}: ${JSON.stringify(defaultPayloadConverter.fromPayload(payload))}`,
      );
    }
  }
  return ours.length;
}

/** The plain text of every payload of `history`, decoded by the client's codecs (what the secrets are checked against). */
async function decodedText(client: SageClient, history: History): Promise<string> {
  const codecs = client.temporal.options.loadedDataConverter.payloadCodecs;
  let text = "";
  for (const { payload } of payloadsIn(history)) {
    let p = [payload];
    for (const c of [...codecs].reverse()) p = await c.decode(p);
    text += Buffer.from(p[0]!.data ?? new Uint8Array()).toString("utf8");
  }
  return text;
}

const docs = Array.from({ length: 6 }, (_, i) => ({ id: i, text: `${RECORD_SECRET} #${i}` }));
const bounded = definePipeline("enc-bounded", (env) =>
  env
    .fromCollection(docs, { name: "docs" })
    .map((d) => ({ id: d.id, words: d.text.split(" ").length }), { name: "count" })
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

/** The bounded job, run once with encryption on, shared by the tests below. */
let boundedRun: Promise<{ config: SageConfig & { dir: string }; keys: string; workflowId: string }> | null = null;
function runBounded() {
  boundedRun ??= (async () => {
    const { file, overrides } = keysFor(scratchDir("enc-keys"));
    const config = testConfig("enc-bounded", overrides);
    const output = join(config.dir, "out.jsonl");
    const { job, result } = await runJob(bounded, config, { output, prompt: PROMPT_SECRET });
    assert.equal(result.phase, "done");
    assert.deepEqual(
      readJsonl<{ id: number; words: number }>(output).sort((a, b) => a.id - b.id),
      docs.map((d) => ({ id: d.id, words: 2 })),
    );
    return { config, keys: file, workflowId: job.workflowId };
  })();
  return boundedRun;
}

test("bounded job: input, memo, activity inputs and results are encrypted in history; output and memo read back right", async () => {
  const { config, workflowId } = await runBounded();
  const client = await SageClient.connect({ config });
  try {
    const history = await rawHistory(client, workflowId);
    const n = assertEncrypted(history, "bounded");
    assert.ok(
      history.events!.some((e) => e.activityTaskCompletedEventAttributes),
      "activities ran",
    );
    assert.ok(n >= 4, `${n} payloads`);
    const desc = await client.temporal.workflowService.describeWorkflowExecution({ namespace: config.temporal.namespace, execution: { workflowId } });
    assertEncrypted({ events: [{ workflowExecutionStartedEventAttributes: { memo: desc.workflowExecutionInfo?.memo } }] }, "memo from describe");
    // Through the codec, the same history holds the prompt (a bounded job's records stay out of history).
    assert.ok((await decodedText(client, history)).includes(PROMPT_SECRET), "decoded, the history holds the prompt");
    const memo = (await (await client.job(workflowId)).describe()).memo as { params: Record<string, string> };
    assert.equal(memo.params.prompt, PROMPT_SECRET);
  } finally {
    await client.close();
  }
});

test("replay with the codec replays the encrypted history; without it, the replayer cannot read it; a wrong key is named", async () => {
  const { config, workflowId } = await runBounded();
  const client = await SageClient.connect({ config });
  const plain = await SageClient.connect({ config: { ...config, security: { ...config.security, encryption: {} } } });
  const wrongKeys = join(config.dir, "wrong-keys");
  writeFileSync(wrongKeys, `k-2026=${randomBytes(32).toString("base64")}\n`);
  try {
    const verdict = await replayExecution(client.temporal, workflowId);
    assert.ok(verdict.deterministic, verdict.error);
    const blind = await replayExecution(plain.temporal, workflowId).catch((err: unknown) => ({ deterministic: false, error: String(err) }));
    assert.equal(blind.deterministic, false, "without the codec the encrypted input cannot be read");
    // `sage replay --file`: a downloaded history replays with the config's codec; under a wrong key, the error names it.
    const file = join(config.dir, "history.json");
    writeFileSync(file, historyToJSON(await client.temporal.workflow.getHandle(workflowId).fetchHistory()));
    const fromFile = await replayFile(file, undefined, dataConverterOf(config));
    assert.ok(fromFile.deterministic, fromFile.error);
    const wrongConfig = { ...config, security: { ...config.security, encryption: { "keys-file": wrongKeys } } };
    const namesTheKey = (err: unknown) => {
      assert.ok(err instanceof PayloadDecryptionError, String(err));
      assert.equal(err.keyId, "k-2026");
      assert.match(err.message, new RegExp(`key "k-2026" \\(file ${wrongKeys}, line 1\\)`));
      return true;
    };
    await assert.rejects(replayFile(file, undefined, dataConverterOf(wrongConfig)), namesTheKey);
    const wrong = await SageClient.connect({ config: wrongConfig });
    try {
      await assert.rejects((await wrong.job(workflowId)).describe(), namesTheKey);
      await assert.rejects(replayExecution(wrong.temporal, workflowId), namesTheKey);
    } finally {
      await wrong.close();
    }
  } finally {
    await plain.close();
    await client.close();
  }
});

const FAILURE_SECRET = "account 4521-8810 of Jane Roe";
/** A job whose source cannot read its split and says why, naming the account: it fails for good at once. */
const refusing = definePipeline("enc-failing", (env) =>
  env
    .fromSource(
      {
        read(): Iterable<{ id: number }> {
          // Not retryable: the job fails at once (a plain Error would be retried by the activity's policy).
          throw new NonRetryableError(`cannot read the statement of ${FAILURE_SECRET}`);
        },
      },
      { name: "statements" },
    )
    .sink(FileSink.jsonl(env.param("output")), { name: "out" }),
);

test("a failed job: failure messages and stacks are encrypted in history; the client, through the codec, reads them; replay passes", async () => {
  const { overrides } = keysFor(scratchDir("enc-fail-keys"));
  const config = testConfig("enc-failing", overrides);
  let workflowId = "";
  await assert.rejects(
    (async () => {
      const w = await startWorker(refusing, config);
      const client = await SageClient.connect({ config });
      try {
        const job = await client.submit(refusing, { params: { output: join(config.dir, "out.jsonl") } });
        workflowId = job.workflowId;
        await job.result();
      } finally {
        await client.close();
        await w.stop();
      }
    })(),
    (err: Error) => {
      // Decoded by the client's codec and failure converter: the reason reads as written.
      assert.match(JSON.stringify({ message: err.message, cause: String((err as { cause?: unknown }).cause) }), new RegExp(FAILURE_SECRET));
      return true;
    },
  );
  const client = await SageClient.connect({ config });
  try {
    const history = await rawHistory(client, workflowId);
    const failures = history
      .events!.flatMap((e) => [e.activityTaskFailedEventAttributes?.failure, e.workflowExecutionFailedEventAttributes?.failure])
      .filter((f) => f);
    assert.ok(failures.length >= 2, `the activity and the workflow failed: ${failures.length} failures in history`);
    for (const f of failures) {
      assert.equal(f!.message, "Encoded failure", "a failure message in clear");
      assert.equal(f!.stackTrace ?? "", "", "a stack trace in clear");
      assert.equal(encodingOf(f!.encodedAttributes!), "binary/encrypted");
    }
    const bytes = Buffer.from(proto.temporal.api.history.v1.History.encode(history).finish());
    assert.ok(!bytes.includes(Buffer.from(FAILURE_SECRET)), "the refused record's text in clear in the raw history");
    const verdict = await replayExecution(client.temporal, workflowId);
    assert.ok(verdict.deterministic, verdict.error);
  } finally {
    await client.close();
  }
});

test("streaming job: batch signals and record-carrying stage markers are encrypted; output exactly right", async () => {
  const t = streamTopics("enc-stream");
  useStreamTopics(t);
  const { overrides } = keysFor(scratchDir("enc-keys"));
  // Unfused, one partition workflow: records travel between stages inline, through history.
  const config = streamConfig("enc-stream", t.dlq, { ...overrides, "execution.parallelism": 1, "execution.fusion": false, "kafka.max-batch-records": 50 });
  const kafka = testKafka();
  await createTopics(kafka, t, 1);
  const N = 200;
  const producer = await kafka.producer();
  await producer.send(
    t.input,
    Array.from({ length: N }, (_, id) => ({ key: `k${id % 7}`, value: JSON.stringify({ id, key: `k${id % 7}`, seq: id, note: `${RECORD_SECRET} ${id}` }) })),
  );
  await producer.close();
  const run = await runStreaming(streamPipeline, config, "enc-stream");
  try {
    await waitForRecords(run.job, N);
    const result = await run.finish();
    assert.equal(result.records, N);
    const out = await readOutput(kafka, t.output);
    assert.deepEqual(
      out.map((r) => r.id).sort((a, b) => a - b),
      Array.from({ length: N }, (_, i) => i),
    );
    assert.ok(out.every((r) => r.double === r.id * 2 && (r as { note?: string }).note === `${RECORD_SECRET} ${r.id}`));
    const history = await rawHistory(run.client, run.job.workflowIds[0]!);
    const signals = history.events!.filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    const markers = history.events!.filter((e) => e.markerRecordedEventAttributes).length;
    assert.ok(signals > 0 && markers > 0, `${signals} signals, ${markers} markers`);
    assertEncrypted(history, "streaming");
    assert.ok((await decodedText(run.client, history)).includes(RECORD_SECRET), "decoded, the stage markers hold the records");
    const verdict = await replayExecution(run.client.temporal, run.job.workflowIds[0]!);
    assert.ok(verdict.deterministic, verdict.error);
  } finally {
    await run.close();
  }
});

/** A payload in proto3 JSON (base64 fields). */
interface PayloadJson {
  metadata: Record<string, string>;
  data: string;
}

/** Payloads as the Web UI posts them: the proto3 JSON of `Payloads` (base64 fields). */
function asUiJson(payloads: Payload[]): { payloads: PayloadJson[] } {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
      data: Buffer.from(p.data ?? new Uint8Array()).toString("base64"),
    })),
  };
}

test("sage codec-server decodes what the Web UI sends (token required, CORS for the UI) and serves the temporal CLI", async () => {
  const { config, keys, workflowId } = await runBounded();
  const tokenFile = join(config.dir, "token");
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const port = await freePort();
  const child = sageCliBackground(["codec-server", "--port", String(port), "--token-file", tokenFile], {
    env: { ...cliEnv(config), SAGE_SECURITY_ENCRYPTION_KEYS_FILE: keys, SAGE_TEMPORAL_UI_PORT: "8233" },
  });
  cleanups.push(() => void child.kill("SIGTERM"));
  let log = "";
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await until("the codec server", async () =>
    log.includes(`codec server at ${url}`) ? true : child.exitCode !== null ? Promise.reject(new Error(log)) : undefined,
  );
  const client = await SageClient.connect({ config });
  let started: Payload[];
  try {
    started = (await rawHistory(client, workflowId)).events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads ?? [];
  } finally {
    await client.close();
  }
  const ui = { origin: "http://127.0.0.1:8233", "content-type": "application/json", "x-namespace": config.temporal.namespace };
  const decode = (headers: Record<string, string>) => fetch(`${url}/decode`, { method: "POST", headers, body: JSON.stringify(asUiJson(started)) });
  const refused = await decode(ui);
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get("access-control-allow-origin"), ui.origin);
  const ok = await decode({ ...ui, authorization: `Bearer ${TOKEN}` });
  assert.equal(ok.status, 200, await ok.clone().text());
  const body = (await ok.json()) as { payloads: PayloadJson[] };
  const input = defaultPayloadConverter.fromPayload<{ params: Record<string, string> }>({
    metadata: Object.fromEntries(Object.entries(body.payloads[0]!.metadata).map(([k, v]) => [k, Buffer.from(v, "base64")])),
    data: Buffer.from(body.payloads[0]!.data, "base64"),
  });
  assert.equal(input.params.prompt, PROMPT_SECRET);
  // A payload whose key id was cut: one clear refusal.
  const cut = asUiJson(started);
  delete cut.payloads[0]!.metadata["encryption-key-id"];
  const noKey = await fetch(`${url}/decode`, { method: "POST", headers: { ...ui, authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(cut) });
  assert.equal(noKey.status, 422);
  assert.match(((await noKey.json()) as { error: string }).error, /names no key: its metadata has no "encryption-key-id"/);
  // The temporal CLI speaks the same protocol: through the codec server it shows the history decoded.
  const temporal = findTemporalBinary(undefined, { install: false }).path;
  assert.ok(temporal, "the temporal CLI the suite's dev server runs on");
  const show = (extra: string[]) =>
    spawnSync(temporal, ["workflow", "show", "--address", config.temporal.address, "-w", workflowId, "--output", "json", ...extra], { encoding: "utf8" });
  const viaCodec = show(["--codec-endpoint", url, "--codec-auth", `Bearer ${TOKEN}`]);
  assert.equal(viaCodec.status, 0, viaCodec.stderr);
  const startInput = (stdout: string) => {
    const events = (JSON.parse(stdout) as { events: Array<{ workflowExecutionStartedEventAttributes?: { input: { payloads: PayloadJson[] } } }> }).events;
    const p = events[0]!.workflowExecutionStartedEventAttributes!.input.payloads[0]!;
    return { encoding: Buffer.from(p.metadata.encoding!, "base64").toString(), data: Buffer.from(p.data, "base64").toString() };
  };
  const decoded = startInput(viaCodec.stdout);
  assert.equal(decoded.encoding, "json/plain");
  assert.ok(decoded.data.includes(PROMPT_SECRET), "decoded by the codec server");
  const without = show([]);
  assert.equal(without.status, 0, without.stderr);
  assert.equal(startInput(without.stdout).encoding, "binary/encrypted");
  assert.ok(!startInput(without.stdout).data.includes(PROMPT_SECRET));
});
