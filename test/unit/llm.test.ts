/**
 * Pure parts of the LLM layer: templates, chunking, request keys, Retry-After,
 * generate's decoding options and how the local server reads them from a request.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fillTemplate, GenerateFunction, LLM_SERVICES, type ChatCall, type LlmServices } from "../../core/api/llm.js";
import { HttpError } from "../../models/http.js";
import { parseChatBody } from "../../models/openai-server.js";
import { NonRetryableError } from "../../core/errors.js";
import { chunkDocument } from "../../connectors/vector/docs-source.js";
import { requestKey } from "../../connectors/llm/response-cache.js";
import { retryAfterMs } from "../../connectors/llm/model-endpoint.js";

test("fillTemplate fills dotted paths, JSON-encodes non-strings, and names a missing field", () => {
  assert.equal(fillTemplate("Q: {{q}} ({{meta.n}}) {{ tags }}", { q: "why?", meta: { n: 3 }, tags: ["a"] }, "prompt"), 'Q: why? (3) ["a"]');
  assert.throws(
    () => fillTemplate("{{missing.field}}", { q: 1 }, 'prompt "p"'),
    (e: unknown) => e instanceof NonRetryableError && /prompt "p": the record has no field "missing.field"/.test(e.message),
  );
});

test("chunkDocument keeps paragraphs whole, prefixes the heading, and cuts long text", () => {
  const doc = { source: "a.md", text: `# Title\n\nfirst paragraph\n\nsecond paragraph\n\n## Part two\n\n${"x".repeat(1500)}` };
  const chunks = chunkDocument(doc, 700);
  assert.equal(chunks[0]!.text, "Title\nfirst paragraph\n\nsecond paragraph");
  assert.deepEqual(
    chunks.map((c) => c.id),
    chunks.map((_, i) => `a.md#${i}`),
  );
  assert.ok(chunks.slice(1).every((c) => c.text.startsWith("Part two\n")));
  assert.equal(
    chunks.slice(1).reduce((n, c) => n + c.text.replace("Part two\n", "").replace(/\s/g, "").length, 0),
    1500,
  );
});

test("requestKey depends on every part of the request, not on key order", () => {
  const a = requestKey("chat", { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 8 });
  assert.equal(a, requestKey("chat", { max_tokens: 8, messages: [{ content: "hi", role: "user" }], model: "m" }));
  assert.notEqual(a, requestKey("chat", { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 9 }));
  assert.notEqual(a, requestKey("embeddings", { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 8 }));
});

test("retryAfterMs reads seconds and HTTP dates", () => {
  assert.equal(retryAfterMs("2"), 2000);
  assert.equal(retryAfterMs(null), null);
  assert.equal(retryAfterMs("soon"), null);
  const inFuture = retryAfterMs(new Date(Date.now() + 60_000).toUTCString())!;
  assert.ok(inFuture > 0 && inFuture <= 60_000);
});

test("generate sends its decoding options with each record's messages", async () => {
  const calls: ChatCall[] = [];
  const services: LlmServices = {
    models: { embed: async () => [], chat: async (request) => (calls.push(request), "an answer") },
    openIndex: async () => ({ search: async () => [] }),
  };
  const fn = new GenerateFunction({ maxTokens: 40, temperature: 0, stop: ["\n"], repeatPenalty: 1.2, frequencyPenalty: 0.2, presencePenalty: 0.1 });
  const logger = { debug() {}, info() {}, warn() {}, error() {} };
  await fn.open({
    operatorId: "g",
    operatorName: "g",
    pipeline: "p",
    parallelism: 1,
    logger,
    service: async <T>(k: string) => (k === LLM_SERVICES ? (services as T) : assert.fail(`asked for service ${k}`)),
  });
  const messages = [{ role: "user" as const, content: "hi" }];
  const out = await fn.map(
    { messages },
    { operatorId: "g", jobId: "j", params: {}, attempt: 1, logger, service: () => assert.fail("map asked for a service") },
  );
  assert.equal(out.answer, "an answer");
  assert.deepEqual(calls, [{ maxTokens: 40, temperature: 0, stop: ["\n"], repeatPenalty: 1.2, frequencyPenalty: 0.2, presencePenalty: 0.1, messages }]);
});

test("the local server reads stop and the penalties as OpenAI (and llama.cpp) name them, and answers 400 naming a bad one", () => {
  const messages = [{ role: "user", content: "hi" }];
  const r = parseChatBody({ messages, stop: "\n", frequency_penalty: 0.5, presence_penalty: -0.5, repeat_penalty: 1.2, max_tokens: 9 });
  assert.deepEqual([r.stop, r.frequencyPenalty, r.presencePenalty, r.repeatPenalty, r.maxTokens], [["\n"], 0.5, -0.5, 1.2, 9]);
  const plain = parseChatBody({ messages, stop: null });
  assert.deepEqual([plain.stop, plain.frequencyPenalty, plain.presencePenalty, plain.repeatPenalty], [undefined, undefined, undefined, undefined]);
  for (const [field, value] of [
    ["stop", ["a", "b", "c", "d", "e"]],
    ["stop", [""]],
    ["stop", 3],
    ["frequency_penalty", 2.5],
    ["presence_penalty", "high"],
    ["repeat_penalty", -1],
  ] as const) {
    assert.throws(
      () => parseChatBody({ messages, [field]: value }),
      (e: unknown) => e instanceof HttpError && e.status === 400 && e.param === field,
      `${field}: ${JSON.stringify(value)}`,
    );
  }
});
