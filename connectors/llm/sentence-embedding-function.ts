/**
 * The SAGE Core `SentenceEmbeddingFunction` pattern: the embedding model itself is opened in
 * `open` (once per operator instance per worker process), used by every batch, and released in
 * `close`. It runs all-MiniLM-L6-v2 in the worker process, with no model server; use it with
 * `stream.mapBatch(new SentenceEmbeddingFunction(text))`. (`stream.embed` calls an endpoint instead.)
 */
import type { FunctionContext, RecordContext } from "../../core/api/context.js";
import { InternalError } from "../../core/errors.js";
import type { Embedded } from "../../core/api/llm.js";
import type { SentenceEmbeddingModel } from "../../models/embedding-model.js";

/** Embeds `text(record)` of each record with the in-process model; adds `embedding`. */
export class SentenceEmbeddingFunction<T> {
  private model: SentenceEmbeddingModel | null = null;
  constructor(
    readonly text: (value: T) => string,
    /** Folder with `model.onnx` and `tokenizer.json` (default: the installed all-MiniLM-L6-v2). */
    readonly modelDir?: string,
  ) {}

  /** Loads the model (the ONNX runtime is imported only here). */
  async open(ctx: FunctionContext): Promise<void> {
    const { SentenceEmbeddingModel } = await import("../../models/embedding-model.js");
    const { localModelFiles, MODELS_DIR } = await import("../../models/paths.js");
    const dir = this.modelDir;
    const files = dir ? { embeddingOnnx: `${dir}/model.onnx`, tokenizerJson: `${dir}/tokenizer.json` } : localModelFiles(MODELS_DIR);
    this.model = await SentenceEmbeddingModel.load(files.embeddingOnnx, files.tokenizerJson);
    ctx.logger.info({ model: files.embeddingOnnx }, "sentence embedding model opened");
  }

  async mapBatch(values: T[], _ctx: RecordContext): Promise<Array<Embedded<T>>> {
    if (!this.model) throw new InternalError("SentenceEmbeddingFunction used before open()");
    const { vectors } = await this.model.embed(values.map((v) => this.text(v)));
    return values.map((v, i) => ({ ...v, embedding: Array.from(vectors[i]!) }));
  }

  /** Releases the model. */
  async close(): Promise<void> {
    await this.model?.release();
    this.model = null;
  }

  /** True between `open` and `close`. */
  get isOpen(): boolean {
    return this.model !== null;
  }
}
