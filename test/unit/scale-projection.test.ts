/** The scale-out projection (`bench/projection.ts`): CPU-bound until the job's one shim fills its core. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { project, type CpuProfile } from "../../bench/projection.js";

const profile: CpuProfile = { perMillion: { server: 10, worker: 50, shim: 20, broker: 20 }, recordsPerSecond: 15_000, machineSeconds: 0, seconds: 0 };

test("while the CPU is the limit, records/s grow with the cores and the heaviest process is named", () => {
  const two = project(profile, 2);
  assert.equal(two.recordsPerSecond, 20_000);
  assert.match(two.bottleneck, /worker takes 50%/);
  assert.equal(project(profile, 4).recordsPerSecond, 40_000);
});

test("the shim, one JavaScript thread per job, caps a job at one core", () => {
  const eight = project(profile, 8);
  assert.equal(eight.recordsPerSecond, 50_000);
  assert.match(eight.bottleneck, /shim/);
  assert.equal(project(profile, 16).recordsPerSecond, 50_000);
});
