/** Workflow entry point bundled by the worker. Only deterministic code is reachable from here. */
export { pipelineWorkflow } from "./pipeline.js";
export { streamWorkflow } from "./stream.js";
