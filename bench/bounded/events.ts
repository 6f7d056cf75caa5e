/**
 * The records of the bounded benchmark: generated click-stream events, and the three operators the
 * pipeline applies to them (`map`, `map`, `filter`). The plain loop and the pipeline share these
 * functions; `bench/bounded/sage_baseline.py` has the same three in Python and writes identical JSON.
 */
import { createWriteStream } from "node:fs";
import { mkdir, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { once } from "node:events";

/** One input record (~100 bytes of JSON). Integers and ASCII only, so Python and TypeScript print the same JSON. */
export interface ClickEvent {
  id: number;
  user: string;
  kind: "view" | "click" | "buy";
  cents: number;
  text: string;
}

/** After the first map. */
export interface EnrichedEvent extends ClickEvent {
  words: number;
}

/** After the second map: what the sink writes. */
export interface LabelledEvent {
  id: number;
  user: string;
  kind: ClickEvent["kind"];
  cents: number;
  words: number;
  tag: string;
}

/** First map: counts the words of the text. */
export function enrich(e: ClickEvent): EnrichedEvent {
  return { ...e, words: e.text.split(" ").length };
}

/** Second map: drops the text, labels the event by kind and size. */
export function label(e: EnrichedEvent): LabelledEvent {
  return { id: e.id, user: e.user, kind: e.kind, cents: e.cents, words: e.words, tag: `${e.kind}:${e.cents >= 5000 ? "big" : "small"}` };
}

/** Filter: views are dropped (about half of the events). */
export function keep(e: LabelledEvent): boolean {
  return e.kind !== "view";
}

const KINDS: ReadonlyArray<ClickEvent["kind"]> = ["view", "view", "view", "click", "click", "buy"];
const WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split(" ");

/** Writes `n` events as JSON Lines to `path` unless that file exists. Returns its size in bytes. */
export async function ensureEvents(path: string, n: number): Promise<number> {
  const existing = await stat(path).catch(() => null);
  if (existing) return existing.size;
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  const out = createWriteStream(tmp);
  let seed = 1234567;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 1);
  let buf: string[] = [];
  for (let id = 0; id < n; id++) {
    const words = Array.from({ length: 3 + (next() % 8) }, () => WORDS[next() % WORDS.length]!);
    const e: ClickEvent = { id, user: `u${next() % 5000}`, kind: KINDS[next() % KINDS.length]!, cents: next() % 10000, text: words.join(" ") };
    buf.push(JSON.stringify(e));
    if (buf.length === 10_000) {
      if (!out.write(buf.join("\n") + "\n")) await once(out, "drain");
      buf = [];
    }
  }
  out.end(buf.length ? buf.join("\n") + "\n" : "");
  await once(out, "finish");
  await rename(tmp, path);
  return (await stat(path)).size;
}
