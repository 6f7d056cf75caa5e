/**
 * The local model server as a child process (`sage models serve --port 0`), for tests and scripts
 * that must not share an event loop with it (a parent blocked in `spawnSync` on a CLI that calls the
 * models would otherwise deadlock).
 */
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ModelUnavailableError } from "../core/errors.js";
import type { ServerStats } from "./openai-server.js";

const SAGE_BIN = resolve(dirname(fileURLToPath(import.meta.url)), "..", "bin", "sage.js");

/** A model server running in a child process. */
export interface ModelServerProcess {
  /** Base URL without `/v1`. */
  url: string;
  pid: number;
  stats(): Promise<ServerStats>;
  stop(): Promise<void>;
}

/** Starts `sage models serve` on a free port and waits until it answers. */
export async function startModelServerProcess(): Promise<ModelServerProcess> {
  const child = spawn(process.execPath, [SAGE_BIN, "models", "serve", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /local model server at (http:\/\/[^\s/]+)\/v1/.exec(output);
      if (m) resolveUrl(m[1]!);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.once("exit", (code) => reject(new ModelUnavailableError(`sage models serve exited (${code}) before it was ready:\n${output}`, null)));
  });
  return {
    url,
    pid: child.pid!,
    stats: async () => (await (await fetch(`${url}/stats`)).json()) as ServerStats,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
