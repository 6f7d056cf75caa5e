/**
 * stream-unit-rerun.test.ts again with `kafka.client: confluent`: a unit run again takes its
 * counts and event time from the note its first run committed with its markers, which the confluent
 * client commits too (our patch to its KafkaJS layer passes the offsets' metadata on).
 */
process.env.SAGE_TEST_KAFKA_CLIENT = "confluent";
await import("./stream-unit-rerun.test.js");

export {};
