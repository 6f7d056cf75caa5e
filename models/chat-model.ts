/**
 * SmolLM2-135M-Instruct (GGUF) run by node-llama-cpp's prebuilt CPU binary: one thread (faster than
 * two on a busy 2-core machine), a few context sequences reused across requests (`clearHistory`),
 * the model's own chat template, stop sequences and repeat penalties, JSON output constrained by a
 * grammar built from a JSON schema.
 */
import {
  getLlama,
  JinjaTemplateChatWrapper,
  LlamaChat,
  LlamaLogLevel,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  type LlamaModel,
} from "node-llama-cpp";

/** One chat message as the OpenAI API sends it. */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "developer";
  content: string;
}

/** How to generate. */
export interface ChatRequest {
  messages: readonly ChatMessage[];
  maxTokens: number;
  temperature: number;
  seed?: number;
  /** Generation ends before the first of these texts (which is not part of the answer). */
  stop?: readonly string[];
  /** Multiplies down the odds of tokens among the last ones generated (llama.cpp's `repeat_penalty`; 1 = off). */
  repeatPenalty?: number;
  /** Lowers a token's logit by this much per earlier occurrence in the answer (OpenAI's `frequency_penalty`). */
  frequencyPenalty?: number;
  /** Lowers a token's logit by this much once it occurred in the answer (OpenAI's `presence_penalty`). */
  presencePenalty?: number;
  /** Constrain output: any JSON object, or JSON matching a schema. */
  json?: { kind: "object" } | { kind: "schema"; schema: object };
  /** Called with each piece of text as it is generated (streaming). */
  onText?: (text: string) => void;
}

/** What the model answered and what it cost. */
export interface ChatResult {
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
}

/**
 * The chat template the GGUF file carries, rendered as written. node-llama-cpp would otherwise pick
 * its generic ChatML wrapper, which puts a BOS token first: for SmolLM2 BOS is `<|im_start|>`, so
 * every prompt began with it twice, a format the model never saw in training.
 */
function modelTemplate(model: LlamaModel): ChatWrapper | undefined {
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  return typeof template === "string" ? new JinjaTemplateChatWrapper({ template, tokenizer: model.tokenizer }) : undefined;
}

/** A loaded chat model with a small pool of reusable context sequences. */
export class LocalChatModel {
  private readonly free: LlamaContextSequence[];
  private readonly waiting: Array<(s: LlamaContextSequence) => void> = [];
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly chatWrapper: ChatWrapper | undefined,
    sequences: number,
  ) {
    this.free = Array.from({ length: sequences }, () => context.getSequence());
  }

  /** Loads the GGUF file on the CPU build (never builds or downloads a binary). */
  static async load(ggufPath: string, options: { sequences?: number; contextSize?: number } = {}): Promise<LocalChatModel> {
    const sequences = options.sequences ?? 2;
    const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: ggufPath });
    const context = await model.createContext({ threads: 1, sequences, contextSize: (options.contextSize ?? 2048) * sequences });
    return new LocalChatModel(llama, model, context, modelTemplate(model), sequences);
  }

  /** Number of tokens of a text. */
  countTokens(text: string): number {
    return this.model.tokenize(text).length;
  }

  private async acquire(): Promise<LlamaContextSequence> {
    const s = this.free.pop();
    if (s) return s;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private giveBack(s: LlamaContextSequence): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }

  private grammar(json: NonNullable<ChatRequest["json"]>): Promise<LlamaGrammar> {
    const key = json.kind === "object" ? "json" : JSON.stringify(json.schema);
    let g = this.grammars.get(key);
    if (!g) {
      g = json.kind === "object" ? this.llama.getGrammarFor("json") : this.llama.createGrammarForJsonSchema(json.schema as never);
      this.grammars.set(key, g);
      g.catch(() => this.grammars.delete(key));
    }
    return g;
  }

  /** Generates one answer on a free sequence (requests beyond the pool wait their turn). */
  async complete(req: ChatRequest): Promise<ChatResult> {
    const grammar = req.json ? await this.grammar(req.json) : undefined;
    const history: ChatHistoryItem[] = req.messages.map((m): ChatHistoryItem => {
      if (m.role === "assistant") return { type: "model", response: [m.content] };
      return m.role === "user" ? { type: "user", text: m.content } : { type: "system", text: m.content };
    });
    history.push({ type: "model", response: [] });
    const sequence = await this.acquire();
    try {
      await sequence.clearHistory();
      const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false, ...(this.chatWrapper ? { chatWrapper: this.chatWrapper } : {}) });
      try {
        const res = await chat.generateResponse(history, {
          maxTokens: req.maxTokens,
          temperature: req.temperature,
          ...(req.seed !== undefined ? { seed: req.seed } : {}),
          ...(grammar ? { grammar } : {}),
          ...(req.onText ? { onTextChunk: req.onText } : {}),
          ...(req.stop && req.stop.length > 0 ? { customStopTriggers: req.stop } : {}),
          repeatPenalty: {
            ...(req.repeatPenalty !== undefined ? { penalty: req.repeatPenalty } : {}),
            ...(req.frequencyPenalty !== undefined ? { frequencyPenalty: req.frequencyPenalty } : {}),
            ...(req.presencePenalty !== undefined ? { presencePenalty: req.presencePenalty } : {}),
          },
        });
        const promptText = req.messages.map((m) => m.content).join("\n");
        return {
          text: res.response,
          finishReason: res.metadata.stopReason === "maxTokens" ? "length" : "stop",
          promptTokens: this.countTokens(promptText) + 4 * req.messages.length,
          completionTokens: this.countTokens(res.response),
        };
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    } finally {
      this.giveBack(sequence);
    }
  }

  /** Frees the context, the model and the binding. */
  async release(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
