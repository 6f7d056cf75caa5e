/**
 * Binding the monitoring ports: a port in use is one clear error naming the port and its config
 * key, or, with `monitoring.port-in-use: next`, the next free port (the caller logs which).
 */
import { createServer, type Server } from "node:net";
import { ConfigError } from "../core/errors.js";

/** What to do when a port is taken. */
export type PortInUse = "fail" | "next";

/** Ports tried after the configured one with `port-in-use: next`. */
const NEXT_PORTS = 100;

function listenOnce(server: Server, host: string, port: number): Promise<number> {
  return new Promise((ok, fail) => {
    const onError = (err: Error): void => fail(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.removeListener("error", onError);
      ok((server.address() as { port: number }).port);
    });
  });
}

/** The error for `key` = `port` on `host` being taken. */
function inUse(key: string, host: string, port: number, tried: number): ConfigError {
  const which = tried > 1 ? `ports ${port}-${port + tried - 1} are all in use` : `port ${port} is in use`;
  return new ConfigError(
    `${key}: ${which} on ${host} (another sage worker or shim on this machine?); ` +
      `set ${key} to a free port (0: any), or monitoring.port-in-use: next to take the next free one`,
  );
}

/** Listens with `server` on `host:port` (0: any free port); returns the port it got. */
export async function listenOn(server: Server, host: string, port: number, mode: PortInUse, key: string): Promise<number> {
  const tries = mode === "next" && port > 0 ? Math.min(NEXT_PORTS, 65536 - port) : 1;
  for (let i = 0; i < tries; i++) {
    try {
      return await listenOnce(server, host, port + i);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EACCES") throw new ConfigError(`${key}: port ${port + i} on ${host} needs privileges this process has not; choose a port above 1023`);
      if (code === "EADDRNOTAVAIL") throw new ConfigError(`monitoring.host: ${host} is not an address of this machine`);
      if (code !== "EADDRINUSE") throw err;
    }
  }
  throw inUse(key, host, port, tries);
}

/** A port that is free on `host` now (checked by binding it), for a listener that binds by itself later. */
export async function freePortFor(host: string, port: number, mode: PortInUse, key: string): Promise<number> {
  const probe = createServer();
  const got = await listenOn(probe, host, port, mode, key);
  await new Promise<void>((ok) => probe.close(() => ok()));
  return got;
}
