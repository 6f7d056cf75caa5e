// The entry of a stage thread (the pool's `filename`): registers the TypeScript loader, as
// bin/sage.js does for the CLI (pipelines and the runner are .ts modules), then serves units.
import { register } from "tsx/esm/api";

register();
const { default: runThreadTask } = await import("./stage-thread.ts");
export default runThreadTask;
