/** The lineage contract: header values and positions read back as written, and what is not one is refused. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { batchIdOf, formatLineage, lineageTopicOf, parseLineage, parsePosition } from "../../core/plan/lineage.js";

test("a lineage header reads back as written, with or without a source", () => {
  const batch = batchIdOf("s0", "p1", 17);
  assert.equal(batch, "s0.p1.17");
  assert.equal(formatLineage({ source: "orders.v2[3]@42", batch }), "orders.v2[3]@42|s0.p1.17");
  assert.deepEqual(parseLineage(formatLineage({ source: "orders.v2[3]@42", batch })), { source: "orders.v2[3]@42", batch });
  assert.deepEqual(parseLineage(formatLineage({ source: null, batch: batchIdOf("s1", "p0", "t1700000000000") })), {
    source: null,
    batch: "s1.p0.t1700000000000",
  });
  assert.equal(parseLineage("no bar"), null);
  assert.equal(parseLineage("orders[0]@1|"), null);
});

test("positions: topic names with dots and brackets, and what is not a position", () => {
  assert.deepEqual(parsePosition("a.b[c][2]@10"), { topic: "a.b[c]", partition: 2, offset: 10 });
  assert.deepEqual(parsePosition("sage.p.j.lineage[0]@0"), { topic: "sage.p.j.lineage", partition: 0, offset: 0 });
  for (const bad of ["orders", "orders[0]", "orders@5", "orders[x]@5", "orders[0]@-1", "[0]@5"]) assert.equal(parsePosition(bad), null, bad);
  assert.equal(lineageTopicOf("enrich", "job-1"), "sage.enrich.job-1.lineage");
});
