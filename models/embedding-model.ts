/**
 * all-MiniLM-L6-v2 (int8 ONNX) run by onnxruntime-node: tokenize with the model's own
 * tokenizer.json, truncate to 256 tokens, mean-pool the last hidden state over the attention mask,
 * L2-normalise.
 */
import { readFile } from "node:fs/promises";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";

/** Longest input in tokens (the model was trained on 256; longer input is cut). */
export const MAX_TOKENS = 256;

/** Vectors of a batch and the tokens it cost. */
export interface EmbeddingResult {
  vectors: Float32Array[];
  tokens: number;
}

/** A loaded sentence embedding model (open once, `release` at the end). */
export class SentenceEmbeddingModel {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: Tokenizer,
  ) {}

  /** Loads the ONNX model and tokenizer (one intra-op thread: the machine is shared). */
  static async load(onnxPath: string, tokenizerPath: string): Promise<SentenceEmbeddingModel> {
    const json = JSON.parse(await readFile(tokenizerPath, "utf8")) as object;
    const tokenizer = new Tokenizer(json, {});
    const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
    return new SentenceEmbeddingModel(session, tokenizer);
  }

  /** Token ids of one text, [CLS] ... [SEP], cut to MAX_TOKENS (keeping [SEP] last). */
  tokenize(text: string): number[] {
    const ids = this.tokenizer.encode(text).ids;
    if (ids.length <= MAX_TOKENS) return ids;
    return [...ids.slice(0, MAX_TOKENS - 1), ids[ids.length - 1]!];
  }

  /**
   * Embeds a batch of texts. Each text is its own session run: the int8 model quantizes activations
   * per tensor, so a text padded into a batch with others gets a slightly different vector; one run
   * per text keeps a text's vector independent of its neighbours (caches and indexes stay consistent).
   */
  async embed(texts: readonly string[]): Promise<EmbeddingResult> {
    const vectors: Float32Array[] = [];
    let tokens = 0;
    for (const text of texts) {
      const ids = this.tokenize(text);
      tokens += ids.length;
      vectors.push(await this.embedIds(ids));
    }
    return { vectors, tokens };
  }

  private async embedIds(row: readonly number[]): Promise<Float32Array> {
    const dims = [1, row.length];
    const out = await this.session.run({
      input_ids: new ort.Tensor(
        "int64",
        BigInt64Array.from(row, (id) => BigInt(id)),
        dims,
      ),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(row.length).fill(1n), dims),
      token_type_ids: new ort.Tensor("int64", new BigInt64Array(row.length), dims),
    });
    const hidden = out.last_hidden_state!;
    const size = hidden.dims[2]!;
    const data = hidden.data as Float32Array;
    // Mean pooling over the tokens, then L2 normalisation.
    const v = new Float32Array(size);
    for (let j = 0; j < row.length; j++) for (let k = 0; k < size; k++) v[k]! += data[j * size + k]!;
    let norm = 0;
    for (let k = 0; k < size; k++) {
      v[k]! /= row.length;
      norm += v[k]! * v[k]!;
    }
    norm = Math.sqrt(norm) || 1;
    for (let k = 0; k < size; k++) v[k]! /= norm;
    return v;
  }

  /** Frees the ONNX session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}
