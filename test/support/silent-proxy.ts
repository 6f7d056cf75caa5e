/**
 * A TCP proxy for tests that can turn silent: while silent it accepts connections and never answers
 * them, as a server caught mid-start can (the listening socket is up, the gRPC server is not), and it
 * keeps them open after it forwards again. Used to show that the shim's calls recover from a gRPC
 * channel stuck connecting on such a socket.
 */
import net from "node:net";

/** A running proxy in front of `upstream`. */
export interface SilentProxy {
  /** `127.0.0.1:port` to connect to. */
  readonly address: string;
  /** Silent: new connections are accepted and left unanswered; the open ones are cut. */
  silence(): void;
  /** Forwards new connections again (the unanswered ones stay open and unanswered). */
  forward(): void;
  close(): Promise<void>;
}

/** Starts a proxy forwarding to `upstream` (`host:port`). */
export async function startSilentProxy(upstream: string): Promise<SilentProxy> {
  const [host, port] = upstream.split(":");
  let silent = false;
  const open = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => s.destroy());
  };
  const server = net.createServer((client) => {
    track(client);
    if (silent) return;
    const target = net.connect(Number(port), host);
    track(target);
    target.on("close", () => client.destroy());
    client.on("close", () => target.destroy());
    client.pipe(target).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    silence() {
      silent = true;
      for (const s of open) s.destroy();
    },
    forward() {
      silent = false;
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
