/**
 * The model client against the deterministic test provider, on a manual clock: a 429 pauses only
 * the model it came from, for exactly its `retry-after-ms` / `Retry-After`, while other models keep
 * going; the measured characters-per-token ratio comes from the usage the endpoint reports.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { EndpointModelClient } from "../../connectors/llm/model-endpoint.js";
import { parseConfig } from "../../core/config/schema.js";
import { startFaultServer, type FaultServer } from "../../models/fault-server.js";
import { metricsRegistry } from "../../monitoring/registry.js";
import { METRICS } from "../../monitoring/names.js";
import { ModelUnavailableError } from "../../core/errors.js";
import { ManualClock } from "../support/manual-clock.js";

let server: FaultServer;
let dataDir: string;
before(async () => {
  server = await startFaultServer();
  dataDir = await mkdtemp(join(tmpdir(), "sage-rate-limits-"));
});
after(async () => {
  await server.close();
  await rm(dataDir, { recursive: true, force: true });
});

const call = { operatorId: "op", pipeline: "p", jobId: "j", params: {} };
const chat = (client: EndpointModelClient, model: string, text: string) =>
  client.chat({ model, messages: [{ role: "user", content: text }], maxTokens: 8, temperature: 0 }, call);

function client(clock: ManualClock): EndpointModelClient {
  const config = parseConfig({ llm: { "base-url": `${server.url}/v1`, cache: false, "max-tries": 3, "max-retry-after": "60s" } });
  return new EndpointModelClient(config.llm, dataDir, pino({ level: "silent" }), clock);
}

async function counterValue(name: string, model: string): Promise<number> {
  const m = metricsRegistry.getSingleMetric(name);
  const values = m ? (await m.get()).values : [];
  return values.filter((v) => v.labels.model === model).reduce((s, v) => s + v.value, 0);
}

test("a 429 with retry-after-ms pauses only its model; the other model's calls go through meanwhile", async () => {
  server.reset();
  const clock = new ManualClock();
  const models = client(clock);
  server.failNext({ status: 429, retryAfterMs: 1_500 });
  const first = chat(models, "slow", "a1");
  await clock.untilSleeping(1);
  assert.deepEqual(clock.sleeps, [1_500], "the slow model waits exactly the retry-after-ms");

  assert.equal(await chat(models, "fast", "b1"), "echo: b1", "the fast model is answered while slow is paused");
  assert.equal(await chat(models, "fast", "b2"), "echo: b2");
  const second = chat(models, "slow", "a2");
  await clock.untilSleeping(2);
  assert.deepEqual(clock.sleeps, [1_500, 1_500], "a new call of the paused model waits too; the fast calls never slept");
  let c = server.counts();
  assert.deepEqual(c.byText, { a1: 1, b1: 1, b2: 1 }, "nothing of the slow model reached the endpoint during the pause");

  await clock.advance(1_500);
  assert.equal(await first, "echo: a1");
  assert.equal(await second, "echo: a2");
  c = server.counts();
  assert.deepEqual(c.byText, { a1: 2, a2: 1, b1: 1, b2: 1 });
  assert.deepEqual(c.byStatus, { 200: 4, 429: 1 });
  assert.deepEqual(models.limiter.waitsOf("slow"), { calls: 2, ms: 3_000, pauses: 1 });
  assert.deepEqual(models.limiter.waitsOf("fast"), { calls: 0, ms: 0, pauses: 0 });
  assert.equal(await counterValue(METRICS.llmRateLimited, "slow"), 1);
  assert.equal(await counterValue(METRICS.llmRateLimited, "fast"), 0);
  assert.equal(await counterValue(METRICS.llmLimiterWait, "slow"), 3);
});

test("Retry-After in seconds pauses the model for that long", async () => {
  server.reset();
  const clock = new ManualClock();
  const models = client(clock);
  const answer = chat(models, "slow", "c1 [[429x1]]");
  await clock.untilSleeping(1);
  assert.deepEqual(clock.sleeps, [1_000]);
  assert.equal(models.limiter.pausedFor("slow"), 1_000);
  assert.equal(models.limiter.pausedFor("fast"), 0);
  await clock.advance(1_000);
  assert.equal(await answer, "echo: c1");
  assert.deepEqual(server.counts().byStatus, { 200: 1, 429: 1 });
});

test("the characters-per-token ratio is measured per model from the reported usage", async () => {
  server.reset();
  const models = client(new ManualClock());
  assert.equal(models.tokens.charsPerToken("m"), 4);
  // The provider counts whitespace-separated words as prompt tokens: 3 tokens for 17 characters.
  await chat(models, "m", "seven chars three");
  assert.equal(models.tokens.charsPerToken("m"), 17 / 3);
  await chat(models, "m", "ab");
  assert.equal(models.tokens.charsPerToken("m"), 19 / 4, "a running ratio over all answers");
  assert.equal(models.tokens.charsPerToken("n"), 4);
});

test("a pause longer than llm.max-retry-after fails the calls of that model at once, for Temporal to retry later", async () => {
  server.reset();
  const clock = new ManualClock();
  const models = client(clock);
  server.failNext({ status: 429, retryAfterMs: 120_000 });
  const unavailable = (after: number) => (e: unknown) => e instanceof ModelUnavailableError && e.retryAfterMs === after;
  await assert.rejects(chat(models, "slow", "d1"), unavailable(120_000));
  await clock.advance(20_000);
  await assert.rejects(chat(models, "slow", "d2"), unavailable(100_000), "a later call of the paused model does not wait inside the activity");
  assert.equal(await chat(models, "fast", "e1"), "echo: e1");
  assert.deepEqual(server.counts().byText, { d1: 1, e1: 1 }, "d2 never reached the endpoint");
  assert.equal(clock.sleeps.length, 0);
  await clock.advance(100_000);
  assert.equal(await chat(models, "slow", "d2"), "echo: d2", "after the pause the model is called again");
});
