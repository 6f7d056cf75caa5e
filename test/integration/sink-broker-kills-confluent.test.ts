/**
 * sink-broker-kills.test.ts again with `kafka.client: confluent`: the sink's transactions under
 * repeated kill -9 of the broker, with overlapping attempts fencing each other. It kills its broker
 * (`testBroker()` in that file), so `npm test` gives it one of its own.
 */
process.env.SAGE_TEST_KAFKA_CLIENT = "confluent";
await import("./sink-broker-kills.test.js");

export {};
