/**
 * The streaming example from the Kafka issue: orders in, enriched orders out, exactly once.
 * Input records are JSON orders `{ id, customerId, items: [{ sku, qty, price }] }`.
 */
import { definePipeline, KafkaSink, KafkaSource, NonRetryableError } from "sage-temporal";

export interface Order {
  id: string;
  customerId: string;
  items: Array<{ sku: string; qty: number; price: number }>;
}

export interface EnrichedOrder extends Order {
  total: number;
  tier: "small" | "medium" | "large";
}

/** Validates the shape; a malformed order is a poison record (dead-letter topic, with the reason). */
export function parseOrder(raw: unknown): Order & { total: number } {
  const o = raw as Partial<Order>;
  if (!o || typeof o.id !== "string" || typeof o.customerId !== "string" || !Array.isArray(o.items)) {
    throw new NonRetryableError(`not an order: ${JSON.stringify(raw).slice(0, 80)}`);
  }
  const total = o.items.reduce((n, i) => n + i.qty * i.price, 0);
  return { id: o.id, customerId: o.customerId, items: o.items, total: Math.round(total * 100) / 100 };
}

export function enrich(o: Order & { total: number }): EnrichedOrder {
  return { ...o, tier: o.total >= 500 ? "large" : o.total >= 100 ? "medium" : "small" };
}

/** Topics (overridable so tests can use their own; every process of a job must see the same names: they are part of the plan). */
const INPUT = process.env.ENRICH_INPUT_TOPIC ?? "orders";
const OUTPUT = process.env.ENRICH_OUTPUT_TOPIC ?? "orders-enriched";
const GROUP = process.env.ENRICH_GROUP ?? "enrich";

export default definePipeline("enrich", (env) =>
  env
    .fromSource(KafkaSource.topic(INPUT, { groupId: GROUP, startFrom: "earliest" }), { name: "orders" })
    .map(parseOrder, { name: "parse" })
    .filter((o) => o.total > 0, { name: "valid" })
    .map(enrich, { name: "enrich" })
    .sink(KafkaSink.topic<EnrichedOrder>(OUTPUT, { key: (o) => o.customerId }), { name: "out" }),
);
