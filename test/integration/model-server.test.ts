/**
 * The local model server over the real small models, driven by the `openai` client exactly as a
 * pipeline would: chat (plain, streamed, JSON schema, stop and penalties, also through the
 * pipeline's model client), embeddings (float and base64), model list, health, usage in every
 * answer, and 400s that name the bad field. Never asserts a model's wording.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import pino from "pino";
import { loadConfig } from "../../client/config-loader.js";
import { EndpointModelClient } from "../../connectors/llm/model-endpoint.js";
import { NonRetryableError } from "../../core/errors.js";
import { startModelServer, type ModelServer } from "../../models/openai-server.js";
import { LOCAL_CHAT_MODEL, LOCAL_EMBEDDING_MODEL } from "../../models/paths.js";

let server: ModelServer;
let client: OpenAI;
before(async () => {
  server = await startModelServer({ port: 0 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "local", maxRetries: 0 });
});
after(async () => server.close());

const cosine = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i]!, 0);

test("chat completion answers with text and usage", async () => {
  const r = await client.chat.completions.create({
    model: LOCAL_CHAT_MODEL,
    messages: [{ role: "user", content: "Say hello." }],
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(typeof r.choices[0]!.message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0]!.finish_reason));
  assert.ok(r.usage!.prompt_tokens > 0 && r.usage!.completion_tokens > 0);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
  assert.ok(r.usage!.completion_tokens <= 8);
});

test("streamed chat sends deltas, then a finish reason and usage, then [DONE]", async () => {
  const stream = await client.chat.completions.create({
    model: LOCAL_CHAT_MODEL,
    messages: [{ role: "user", content: "Count to three." }],
    max_tokens: 8,
    stream: true,
  });
  let chunks = 0;
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const c of stream) {
    chunks++;
    finish = c.choices[0]?.finish_reason ?? finish;
    usage = c.usage ?? usage;
  }
  assert.ok(chunks >= 3, `got ${chunks} chunks`);
  assert.ok(finish === "stop" || finish === "length");
  assert.ok(usage && usage.completion_tokens > 0);
});

test("json_schema output is valid JSON matching the schema; json_object is JSON", async () => {
  const schema = { type: "object", properties: { intent: { type: "string", enum: ["question", "command", "conversation"] } }, required: ["intent"] };
  const r = await client.chat.completions.create({
    model: LOCAL_CHAT_MODEL,
    messages: [{ role: "user", content: "Which intent is: restart the server" }],
    max_tokens: 24,
    temperature: 0,
    response_format: { type: "json_schema", json_schema: { name: "intent", schema } },
  });
  const parsed = JSON.parse(r.choices[0]!.message.content!) as { intent: string };
  assert.ok(["question", "command", "conversation"].includes(parsed.intent));
  const o = await client.chat.completions.create({
    model: LOCAL_CHAT_MODEL,
    messages: [{ role: "user", content: "Give a JSON object." }],
    max_tokens: 48,
    temperature: 0,
    response_format: { type: "json_object" },
  });
  const text = o.choices[0]!.message.content!;
  // The grammar forces JSON; only a cut at max_tokens can leave it unfinished.
  assert.match(text, /^\s*\{/);
  if (o.choices[0]!.finish_reason === "stop") assert.equal(typeof JSON.parse(text), "object");
});

test("stop ends an answer before the stop text; the penalties are taken; through the pipeline's model client too", async () => {
  const messages = [{ role: "user" as const, content: "Name three fruits, one per line." }];
  const free = await client.chat.completions.create({ model: LOCAL_CHAT_MODEL, messages, max_tokens: 24, temperature: 0 });
  const stopped = await client.chat.completions.create({ model: LOCAL_CHAT_MODEL, messages, max_tokens: 24, temperature: 0, stop: ["\n"] });
  const text = stopped.choices[0]!.message.content!;
  assert.ok(!text.includes("\n"), JSON.stringify(text));
  assert.equal(stopped.choices[0]!.finish_reason, "stop");
  // Greedy decoding: up to the stop, the stopped answer is the free one.
  assert.ok(free.choices[0]!.message.content!.startsWith(text), JSON.stringify({ free: free.choices[0]!.message.content, text }));
  assert.ok(stopped.usage!.completion_tokens < free.usage!.completion_tokens || free.choices[0]!.finish_reason === "stop");

  const config = loadConfig({ env: {}, overrides: { "llm.base-url": `${server.url}/v1`, "llm.cache": false, "llm.max-tries": 1 } });
  const models = new EndpointModelClient(config.llm, mkdtempSync(join(tmpdir(), "sage-models-")), pino({ level: "silent" }));
  const call = { operatorId: "generate", pipeline: "t", jobId: "j", params: {} };
  const decoding = { maxTokens: 24, temperature: 0, stop: ["\n"], repeatPenalty: 1.2, frequencyPenalty: 0.2, presencePenalty: 0.2 };
  const answer = await models.chat({ ...decoding, messages }, call);
  assert.ok(answer.length > 0 && !answer.includes("\n"), JSON.stringify(answer));
  // Each field reaches the server under its wire name: an out-of-range one comes back as a 400 naming it.
  for (const [bad, name] of [
    [{ repeatPenalty: 5 }, "repeat_penalty"],
    [{ frequencyPenalty: 3 }, "frequency_penalty"],
    [{ presencePenalty: -3 }, "presence_penalty"],
  ] as const) {
    await assert.rejects(models.chat({ ...decoding, ...bad, messages }, call), (e: unknown) => e instanceof NonRetryableError && e.message.includes(name));
  }
});

test("embeddings: 384-d unit vectors, base64 (the client's default) equals float, meaning is kept", async () => {
  const input = ["a cat sleeps on the sofa", "a kitten naps on the couch", "interest rates and the bond market"];
  const b64 = await client.embeddings.create({ model: LOCAL_EMBEDDING_MODEL, input });
  const flt = await client.embeddings.create({ model: LOCAL_EMBEDDING_MODEL, input, encoding_format: "float" });
  assert.equal(b64.data.length, 3);
  assert.ok(b64.usage.prompt_tokens > 0);
  const [a, b, c] = flt.data.map((d) => d.embedding);
  for (const v of [a!, b!, c!]) {
    assert.equal(v.length, 384);
    assert.ok(Math.abs(cosine(v, v) - 1) < 1e-4);
  }
  b64.data.forEach((d, i) => d.embedding.forEach((x, k) => assert.ok(Math.abs(x - flt.data[i]!.embedding[k]!) < 1e-6)));
  assert.ok(cosine(a!, b!) > cosine(a!, c!));
  // A text's vector does not depend on the batch it came in.
  const alone = await client.embeddings.create({ model: LOCAL_EMBEDDING_MODEL, input: input[0]!, encoding_format: "float" });
  assert.deepEqual(alone.data[0]!.embedding, a);
});

test("model list, health, stats; bad requests get 400/404 naming the field or model", async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), [LOCAL_EMBEDDING_MODEL, LOCAL_CHAT_MODEL].sort());
  assert.equal(((await (await fetch(`${server.url}/health`)).json()) as { status: string }).status, "ok");
  assert.ok(server.stats().chat >= 3);
  await assert.rejects(
    client.chat.completions.create({ model: LOCAL_CHAT_MODEL, messages: [], max_tokens: 4 }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /messages/.test(e.message),
  );
  await assert.rejects(
    client.embeddings.create({ model: "no-such-model", input: "x" }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 404 && /no-such-model/.test(e.message),
  );
});
