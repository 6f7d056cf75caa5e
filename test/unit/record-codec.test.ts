/** The fast path of encodeRecord (plain data without a replacer) gives the same text as the checked path. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeRecord } from "../../activities/record-codec.js";
import { NonSerializableValueError } from "../../core/errors.js";

test("encodeRecord: plain data, values with toJSON and deep nesting encode exactly as JSON.stringify does", () => {
  let deep: unknown = { leaf: [1, 2.5, "x", true, null] };
  for (let i = 0; i < 100; i++) deep = { d: deep };
  const values: unknown[] = [
    { id: 1, user: "u1", tags: ["a", "b"], nested: { ok: false, n: null } },
    { at: new Date(0), n: NaN, inf: -Infinity },
    [[], {}, "", 0],
    deep,
    Object.assign(Object.create({ inherited: 1 }) as object, { own: 2 }),
  ];
  for (const v of values) assert.equal(encodeRecord(v, "op"), JSON.stringify(v));
});

test("encodeRecord: what the walk refuses still fails with the checked path's message", () => {
  const holes = [1, , 3];
  assert.throws(
    () => encodeRecord(holes, "op"),
    (err: unknown) => err instanceof NonSerializableValueError && /key "1" is undefined/.test(err.message),
  );
  assert.throws(
    () => encodeRecord({ at: { toJSON: () => ({ fn: () => 1 }) } }, "op"),
    (err: unknown) => err instanceof NonSerializableValueError && /key "fn" is a function/.test(err.message),
  );
});
