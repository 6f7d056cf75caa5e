#!/usr/bin/env node
// The `sage` CLI: registers the TypeScript loader (pipelines are .ts modules), then runs the CLI.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
