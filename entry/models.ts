/**
 * `sage-temporal/models`: the local model server (the OpenAI-compatible endpoint `sage models serve`
 * runs) and the address pipelines call by default.
 */
export { startModelServer, type ModelServer, type ServerStats } from "../models/openai-server.js";
export { LOCAL_BASE_URL } from "../connectors/llm/model-endpoint.js";
