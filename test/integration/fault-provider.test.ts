/** The deterministic test provider: faults by directive or queue, Retry-After, exact bytes, counts. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { fakeEmbedding, startFaultServer, type FaultServer } from "../../models/fault-server.js";

let server: FaultServer;
before(async () => (server = await startFaultServer()));
after(async () => server.close());

const chat = (content: string) =>
  fetch(`${server.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "m", messages: [{ role: "user", content }] }) });

test("[[429x2]] answers 429 with Retry-After twice, then the echo; [[400]] always 400; counts", async () => {
  server.reset();
  const first = await chat("hi [[429x2]]");
  assert.equal(first.status, 429);
  assert.equal(first.headers.get("retry-after"), "1");
  assert.equal((await chat("hi [[429x2]]")).status, 429);
  const ok = await chat("hi [[429x2]]");
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content, "echo: hi");
  assert.equal((await chat("bad [[400]]")).status, 400);
  assert.equal((await chat("bad [[400]]")).status, 400);
  const c = server.counts();
  assert.equal(c.chat, 5);
  assert.deepEqual(c.byStatus, { 200: 1, 400: 2, 429: 2 });
});

test("queued faults come first, with exact bytes; embeddings are deterministic", async () => {
  server.reset();
  server.failNext({ status: 500, body: "exact bytes" });
  const r = await chat("x");
  assert.equal(r.status, 500);
  assert.equal(await r.text(), "exact bytes");
  const e = await fetch(`${server.url}/v1/embeddings`, { method: "POST", body: JSON.stringify({ input: ["a", "b"], encoding_format: "float" }) });
  const body = (await e.json()) as { data: Array<{ embedding: number[] }> };
  assert.deepEqual(body.data[1]!.embedding, fakeEmbedding("b"));
  assert.equal(server.counts().embeddedInputs, 2);
});
