/** The remote codec endpoint: encode/decode over HTTP, CORS for the Web UI origin, the bearer token, bad requests. */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { defaultPayloadConverter } from "@temporalio/common";
import { AesGcmCodec } from "../../../security/aes-gcm-codec.js";
import { startCodecServer, type CodecServer } from "../../../security/codec-server.js";
import { createLogger } from "../../../client/logger.js";
import { newKey, ringOf } from "./keys.js";

const UI = "http://127.0.0.1:8233";
const TOKEN = "s3cret-token";
const codec = new AesGcmCodec(ringOf({ k1: newKey() }));
const servers: CodecServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function server(token: string | null): Promise<CodecServer> {
  const s = await startCodecServer({ codec, port: 0, host: "127.0.0.1", corsOrigins: [UI], token, logger: createLogger("silent") });
  servers.push(s);
  return s;
}

const json = (value: unknown) => {
  const p = defaultPayloadConverter.toPayload(value);
  return { metadata: { encoding: Buffer.from(p.metadata!.encoding!).toString("base64") }, data: Buffer.from(p.data!).toString("base64") };
};

function post(s: CodecServer, path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: UI, "x-namespace": "default", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

test("encode then decode over HTTP gives the payloads back; encode's output is encrypted", async () => {
  const s = await server(null);
  const enc = await post(s, "/encode", { payloads: [json({ prompt: "hello" }), json(42)] });
  assert.equal(enc.status, 200);
  assert.equal(enc.headers.get("access-control-allow-origin"), UI);
  const sealed = (await enc.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
  assert.equal(Buffer.from(sealed.payloads[0]!.metadata["encoding"]!, "base64").toString(), "binary/encrypted");
  assert.equal(Buffer.from(sealed.payloads[0]!.metadata["encryption-key-id"]!, "base64").toString(), "k1");
  const dec = await post(s, "/default/decode", sealed); // a path prefix (per namespace) works too
  assert.equal(dec.status, 200);
  assert.deepEqual(await dec.json(), { payloads: [json({ prompt: "hello" }), json(42)] });
});

test("with a token: 401 without it or with another one (CORS headers kept, so the UI can read why); 200 with it", async () => {
  const s = await server(TOKEN);
  const body = { payloads: [json("x")] };
  const none = await post(s, "/encode", body);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("access-control-allow-origin"), UI);
  assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
  assert.equal((await post(s, "/encode", body, { authorization: "Bearer nope" })).status, 401);
  assert.equal((await post(s, "/encode", body, { authorization: TOKEN })).status, 401, "the scheme is required");
  assert.equal((await post(s, "/encode", body, { authorization: `Bearer ${TOKEN}` })).status, 200);
});

test("CORS preflight: the Web UI origin may call with its headers, another origin may not", async () => {
  const s = await server(TOKEN);
  const preflight = (origin: string) =>
    fetch(`${s.url}/decode`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-namespace,authorization" },
    });
  const ok = await preflight(UI);
  assert.equal(ok.status, 204, "no token needed: browsers send none with a preflight");
  assert.equal(ok.headers.get("access-control-allow-origin"), UI);
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /Authorization/);
  assert.match(ok.headers.get("access-control-allow-headers") ?? "", /X-Namespace/);
  assert.match(ok.headers.get("access-control-allow-methods") ?? "", /POST/);
  const other = await preflight("http://evil.example");
  assert.equal(other.status, 403);
  assert.equal(other.headers.get("access-control-allow-origin"), null);
});

test("bad requests get a status and a reason; a payload under an unknown key names the key", async () => {
  const s = await server(null);
  assert.equal((await post(s, "/decode", "{not json")).status, 400);
  const bad = await post(s, "/decode", { payloads: [{ metadata: { encoding: "!!" } }] });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /payloads\[0\]\.metadata\.encoding is not a base64 string/);
  assert.equal((await post(s, "/decode", { nope: 1 })).status, 400);
  assert.equal((await fetch(`${s.url}/decode`)).status, 405);
  assert.equal((await post(s, "/other", { payloads: [] })).status, 404);
  const foreign = (await (await fetch(`${s.url}/encode`, { method: "POST", body: JSON.stringify({ payloads: [json(1)] }) })).json()) as {
    payloads: Array<{ metadata: Record<string, string> }>;
  };
  foreign.payloads[0]!.metadata["encryption-key-id"] = Buffer.from("k-old").toString("base64");
  const unknown = await post(s, "/decode", foreign);
  assert.equal(unknown.status, 422);
  assert.match(((await unknown.json()) as { error: string }).error, /key "k-old", which is not among the keys of file \/keys\/test \(k1\)/);
});
