/**
 * The state backends the unit tests run against: the in-memory one, and the embedded one in a
 * fresh temporary store directory (closed and removed when the test file ends).
 */
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InMemoryStateBackend, type StateBackend } from "../../../activities/state/backend.js";
import { EmbeddedStateBackend } from "../../../activities/state/embedded-backend.js";

const opened: EmbeddedStateBackend[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(opened.map((b) => b.close()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test file ends. */
export function tempStoreDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "sage-state-test-"));
  dirs.push(dir);
  return dir;
}

/** Opens an embedded store in `dir` (a fresh one by default), closed when the test file ends. */
export function openEmbedded(dir: string = tempStoreDir()): EmbeddedStateBackend {
  const backend = EmbeddedStateBackend.open(dir);
  opened.push(backend);
  return backend;
}

/** Each backend's name and a maker of a fresh, empty one. */
export const BACKENDS: ReadonlyArray<readonly [string, () => StateBackend]> = [
  ["memory", () => new InMemoryStateBackend()],
  ["embedded", () => openEmbedded()],
];
