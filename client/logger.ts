/** pino JSON logging for every process (CLI, worker, activities), with secrets redacted. */
import { pino, type Logger } from "pino";

/** Paths whose values never reach a log line. */
export const REDACTED_PATHS = [
  "apiKey",
  "*.apiKey",
  "api-key",
  "*.api-key",
  "*.*.api-key",
  "password",
  "*.password",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "tls.key",
  "*.tls.key",
  "OPENAI_API_KEY",
];

/** A pino logger writing JSON to stderr (stdout stays free for results). */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } }, pino.destination(2));
}
