/** Where `scripts/install-models.sh` puts the local models, and the names the server gives them. */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ModelNotInstalledError } from "../core/errors.js";

/** Root of the installed models (`.tools/models` in the repository). */
export const MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", ".tools", "models");

/** Model id of the local chat model (SmolLM2-135M-Instruct, Q4_1 GGUF). */
export const LOCAL_CHAT_MODEL = "smollm2-135m-instruct";
/** Model id of the local embedding model (all-MiniLM-L6-v2, int8 ONNX, 384 dimensions). */
export const LOCAL_EMBEDDING_MODEL = "all-minilm-l6-v2";

/** Files of the local models. */
export interface LocalModelFiles {
  chatGguf: string;
  embeddingOnnx: string;
  tokenizerJson: string;
}

/** The installed model files under `dir`; throws naming the missing file and the install command. */
export function localModelFiles(dir = MODELS_DIR): LocalModelFiles {
  const files = {
    chatGguf: join(dir, "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    embeddingOnnx: join(dir, "all-minilm-l6-v2-q", "model.onnx"),
    tokenizerJson: join(dir, "all-minilm-l6-v2-q", "tokenizer.json"),
  };
  for (const path of Object.values(files)) {
    if (!existsSync(path)) throw new ModelNotInstalledError(path, `local model file ${path} is missing: run \`bash scripts/install-models.sh\``);
  }
  return files;
}
