/** The Kafka client a configuration asks for (`kafka.client`: kafkajs or confluent), and Kafka names derived from the config. */
import type { Logger } from "pino";
import type { SageConfig } from "../../core/config/schema.js";
import type { KafkaClient } from "./client.js";
import { createConfluentClient } from "./confluent-client.js";
import { createKafkajsClient } from "./kafkajs-client.js";
import { kafkaSecurityOf } from "./security.js";

/** Bootstrap servers from `kafka.brokers` (comma-separated). */
export function brokersOf(config: SageConfig): string[] {
  return config.kafka.brokers
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
}

/**
 * A Kafka client for the configured cluster (`kafka.client`), with its TLS and SASL (`kafka.ssl`, `kafka.sasl`) and
 * replication factor. Reads the certificate and password files now: a missing or expired one
 * throws a `ConfigError` naming it before anything connects.
 */
export function kafkaClientOf(config: SageConfig, logger?: Logger): KafkaClient {
  const options = {
    brokers: brokersOf(config),
    clientId: config.kafka["client-id"],
    security: kafkaSecurityOf(config),
    replicationFactor: config.kafka["replication-factor"],
    ...(logger ? { logger } : {}),
  };
  return config.kafka.client === "confluent" ? createConfluentClient(options) : createKafkajsClient(options);
}

/** The dead-letter topic of a streaming pipeline. */
export function deadLetterTopicOf(config: SageConfig, pipeline: string): string {
  return config.kafka["dead-letter-topic"] ?? `${pipeline}.dlq`;
}
