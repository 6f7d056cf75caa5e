/** The workflow bundle cache's fingerprint: what it follows and what it ignores. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleFingerprint } from "../../../worker/workflow-bundle.js";

function tree(): string {
  const root = mkdtempSync(join(tmpdir(), "sage-bundle-fp-"));
  mkdirSync(join(root, "workflows"));
  mkdirSync(join(root, "core"));
  writeFileSync(join(root, "package-lock.json"), '{"lockfileVersion":3}');
  writeFileSync(join(root, "workflows", "index.ts"), 'export * from "./job.js";\n');
  writeFileSync(
    join(root, "workflows", "job.ts"),
    'import { plan } from "../core/plan.js";\nimport type { X } from "../core/types";\nexport const job = plan;\n',
  );
  writeFileSync(join(root, "core", "plan.ts"), "export const plan = 1;\n");
  writeFileSync(join(root, "core", "types.ts"), "export type X = number;\n");
  writeFileSync(join(root, "core", "unrelated.ts"), "export const other = 1;\n");
  return root;
}

test("the fingerprint follows transitive relative imports and the package lock, nothing else", () => {
  const root = tree();
  const entry = join(root, "workflows", "index.ts");
  const first = bundleFingerprint(entry);
  assert.equal(bundleFingerprint(entry), first, "same tree, same fingerprint");

  writeFileSync(join(root, "core", "unrelated.ts"), "export const other = 2;\n");
  assert.equal(bundleFingerprint(entry), first, "a file the workflows do not import does not count");

  writeFileSync(join(root, "core", "plan.ts"), "export const plan = 2;\n");
  const afterImport = bundleFingerprint(entry);
  assert.notEqual(afterImport, first, "a file imported two levels down counts");

  writeFileSync(join(root, "core", "types.ts"), "export type X = string;\n");
  const afterType = bundleFingerprint(entry);
  assert.notEqual(afterType, afterImport, "an extensionless import counts");

  writeFileSync(join(root, "package-lock.json"), '{"lockfileVersion":3,"packages":{}}');
  const afterLock = bundleFingerprint(entry);
  assert.notEqual(afterLock, afterType, "a dependency change counts");

  const converter = join(root, "core", "failures.ts");
  writeFileSync(converter, "export const failureConverter = 1;\n");
  assert.notEqual(bundleFingerprint(entry, converter), afterLock, "the failure converter counts");
});
