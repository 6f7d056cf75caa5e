/**
 * The documents of a folder as a bounded source (one split per file) and the chunker that cuts a
 * document into passages for the vector index.
 */
import { readdirSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import type { SourceContext } from "../../core/api/context.js";
import type { SourceFunction, SplitDescriptor } from "../../core/api/functions.js";
import { SourceError } from "../../core/errors.js";

/** A document read from the folder. */
export interface DocumentRecord {
  /** Path relative to the indexed folder. */
  source: string;
  text: string;
}

/** A passage of a document. */
export interface Chunk {
  /** `<source>#<n>`. */
  id: string;
  source: string;
  text: string;
}

/** File name endings that are indexed. */
export const DOC_EXTENSIONS = [".md", ".markdown", ".txt"];

/** Every document file under `root`, relative paths, sorted. */
export function listDocuments(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith(".") || name === "node_modules") continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (DOC_EXTENSIONS.some((e) => name.toLowerCase().endsWith(e))) out.push(relative(root, path));
    }
  };
  walk(root);
  return out;
}

/** Reads the documents of the folder in job parameter `docs`, one split per file. */
export class DocumentsSource implements SourceFunction<DocumentRecord> {
  splits(ctx: SourceContext): SplitDescriptor[] {
    const root = resolve(ctx.params.docs ?? "");
    let files: string[] | null = null;
    try {
      if (ctx.params.docs && statSync(root).isDirectory()) files = listDocuments(root);
    } catch {
      files = null;
    }
    if (!files) throw new SourceError(`index: docs folder "${ctx.params.docs ?? ""}" does not exist or is not a folder`);
    if (files.length === 0) throw new SourceError(`index: no ${DOC_EXTENSIONS.join("/")} files under ${root}`);
    return files.map((f) => ({ root, file: f }));
  }
  async *read(split: SplitDescriptor): AsyncIterable<DocumentRecord> {
    const { root, file } = split as { root: string; file: string };
    yield { source: file, text: await readFile(join(root, file), "utf8") };
  }
}

/**
 * Cuts a document into passages of about `maxChars`: paragraphs are kept whole where they fit, and
 * each passage starts with the heading it sits under, so it reads on its own.
 */
export function chunkDocument(doc: DocumentRecord, maxChars = 700): Chunk[] {
  const chunks: Chunk[] = [];
  let heading = "";
  let current = "";
  const flush = (): void => {
    const body = current.trim();
    if (body !== "")
      chunks.push({ id: `${doc.source}#${chunks.length}`, source: doc.source, text: heading && !body.startsWith(heading) ? `${heading}\n${body}` : body });
    current = "";
  };
  for (const para of doc.text.split(/\n\s*\n/)) {
    const p = para.trim();
    if (p === "") continue;
    if (/^#{1,6}\s/.test(p) && !p.includes("\n")) {
      flush();
      heading = p.replace(/^#+\s*/, "");
      continue;
    }
    for (let i = 0; i < p.length; i += maxChars) {
      const piece = p.slice(i, i + maxChars);
      if (current.length + piece.length > maxChars) flush();
      current += `${piece}\n\n`;
    }
  }
  flush();
  return chunks;
}
