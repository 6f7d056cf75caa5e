/** Where `sage dev --kafka --brokers n` puts its brokers: the listed ports, or the first one's and the next even ones. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { devClusterOf } from "../../cli/dev.js";
import { ServerUnavailableError, UsageError } from "../../core/errors.js";

test("one broker on kafka.brokers' port, its controller on the next", () => {
  assert.deepEqual(devClusterOf("127.0.0.1:9092", 1, "/d"), { ports: [9092], controllerPorts: [9093], dataDir: "/d" });
});

test("three brokers: the three listed, or 9092, 9094, 9096 from the first", () => {
  assert.deepEqual(devClusterOf("127.0.0.1:9192,localhost:9292,127.0.0.1:9392", 3, "/d").ports, [9192, 9292, 9392]);
  assert.deepEqual(devClusterOf("127.0.0.1:9092", 3, "/d"), { ports: [9092, 9094, 9096], controllerPorts: [9093, 9095, 9097], dataDir: "/d" });
});

test("no count, or a broker that is not local: said", () => {
  assert.throws(() => devClusterOf("127.0.0.1:9092", 0, "/d"), UsageError);
  assert.throws(() => devClusterOf("127.0.0.1:9092", Number("x"), "/d"), UsageError);
  assert.throws(() => devClusterOf("kafka.example:9092", 3, "/d"), ServerUnavailableError);
});
