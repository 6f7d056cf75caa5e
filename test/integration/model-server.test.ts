/**
 * The local model server over the real small models, driven by the `openai` client exactly as a
 * pipeline would: chat (plain, streamed, JSON schema), embeddings (float and base64), model list,
 * health, usage in every answer, and 400s that name the bad field. Never asserts a model's wording.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
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
