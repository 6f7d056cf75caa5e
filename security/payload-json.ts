/**
 * Payloads in the JSON form of Temporal's remote codec protocol (the proto3 JSON of `Payloads`:
 * `{"payloads":[{"metadata":{"encoding":"<base64>"},"data":"<base64>"}]}`), as the Web UI and
 * `temporal --codec-endpoint` send them.
 */
import type { Payload } from "@temporalio/common";

/** A payload as JSON: metadata values and data in base64. */
export interface PayloadJson {
  metadata?: Record<string, string>;
  data?: string;
}

/** The request body is not `{ payloads: [...] }` of base64 fields. */
export class PayloadJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PayloadJsonError";
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function bytesOf(value: unknown, where: string): Uint8Array {
  if (typeof value !== "string" || !BASE64.test(value)) throw new PayloadJsonError(`${where} is not a base64 string`);
  return new Uint8Array(Buffer.from(value, "base64"));
}

/** Parses a request body into payloads; throws `PayloadJsonError` naming what is wrong. */
export function payloadsFromJson(body: unknown): Payload[] {
  const list = body && typeof body === "object" ? (body as { payloads?: unknown }).payloads : undefined;
  if (!Array.isArray(list)) throw new PayloadJsonError('expected a JSON object {"payloads": [...]}');
  return list.map((p: unknown, i): Payload => {
    if (!p || typeof p !== "object") throw new PayloadJsonError(`payloads[${i}] is not an object`);
    const { metadata = {}, data = "" } = p as { metadata?: unknown; data?: unknown };
    if (!metadata || typeof metadata !== "object" || Array.isArray(metadata)) throw new PayloadJsonError(`payloads[${i}].metadata is not an object`);
    const meta: Record<string, Uint8Array> = {};
    for (const [k, v] of Object.entries(metadata)) meta[k] = bytesOf(v, `payloads[${i}].metadata.${k}`);
    return { metadata: meta, data: bytesOf(data, `payloads[${i}].data`) };
  });
}

/** The JSON body of a response. */
export function payloadsToJson(payloads: Payload[]): { payloads: PayloadJson[] } {
  const b64 = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString("base64");
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, b64(v)])),
      data: b64(p.data),
    })),
  };
}
