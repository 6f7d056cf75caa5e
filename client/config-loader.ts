/**
 * Loads configuration from `sage.config.yaml`, `SAGE_*` environment variables and CLI flags (later
 * wins), records where each value came from, and validates once (`parseConfig`).
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { CONFIG_KEYS, envVarOf, parseConfig, type SageConfig } from "../core/config/schema.js";
import { ConfigError } from "../core/errors.js";

/** Default config file name, looked up in the working directory. */
export const CONFIG_FILE = "sage.config.yaml";

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  let cur = target;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== "object" || next === null) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1]!] = value;
}

function leafKeys(value: unknown, prefix = ""): string[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leafKeys(v, prefix ? `${prefix}.${k}` : k));
}

/** Where to read configuration from. */
export interface LoadConfigOptions {
  /** Explicit config file (error if missing); default `./sage.config.yaml` if present. */
  file?: string;
  /** Dotted key -> value overrides from CLI flags. */
  overrides?: Record<string, unknown>;
  /** Environment to read `SAGE_*` variables from. */
  env?: NodeJS.ProcessEnv;
}

/** Reads, merges and validates configuration. */
export function loadConfig(options: LoadConfigOptions = {}): SageConfig {
  const raw: Record<string, unknown> = {};
  const origins = new Map<string, string>();
  const file = options.file ?? (existsSync(CONFIG_FILE) ? CONFIG_FILE : undefined);
  if (file) {
    const path = resolve(file);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(`cannot read config file "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config file "${path}" is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof doc !== "object" || Array.isArray(doc)) throw new ConfigError(`config file "${path}" must hold a mapping of keys, got ${typeof doc}`);
    for (const key of leafKeys(doc)) origins.set(key, path);
    Object.assign(raw, doc);
  }
  const env = options.env ?? process.env;
  for (const key of CONFIG_KEYS) {
    const value = env[envVarOf(key)];
    if (value !== undefined && value !== "") {
      setPath(raw, key, value);
      origins.set(key, `environment variable ${envVarOf(key)}`);
    }
  }
  // The openai client's own variables work too, when the SAGE_ ones are not set.
  for (const [key, name] of [
    ["llm.base-url", "OPENAI_BASE_URL"],
    ["llm.api-key", "OPENAI_API_KEY"],
  ] as const) {
    const value = env[name];
    if (value && !origins.has(key)) {
      setPath(raw, key, value);
      origins.set(key, `environment variable ${name}`);
    }
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, key, value);
    origins.set(key, `command-line flag for ${key}`);
  }
  return parseConfig(raw, origins);
}
