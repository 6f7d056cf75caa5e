/**
 * The durable LLM spend ledger of one budget scope (a job, or a pipeline over all its jobs): an
 * append-only JSON-lines file under `<data-dir>/llm/budget/`, one line per paid model call, keyed so
 * that a charge counts once however often it is appended. The key is the request's hash (with the
 * job for a pipeline ledger): the response cache answers a repeated request for free, so a request
 * is paid at most once per job, and a retried activity, a restarted worker or two processes racing
 * on the same call add a duplicate line that the reader drops. Several processes on one data dir may
 * append to the same file; each reads what the others appended before it decides.
 */
import { appendFile, mkdir, open } from "node:fs/promises";
import { dirname } from "node:path";

/** One paid model call. */
export interface Charge {
  /** Idempotency key: the same key is counted once. */
  key: string;
  /** When it was paid, in ms of the budget's clock. */
  at: number;
  model: string;
  operator: string;
  /** Prompt plus completion tokens the endpoint reported. */
  tokens: number;
  /** USD from `llm.prices` (0 for a model without a price). */
  cost: number;
}

/** Spend of a ledger over its windows. */
export interface Spend {
  tokensLastMinute: number;
  dollarsLastHour: number;
  dollarsTotal: number;
  /** Distinct charges. */
  charges: number;
}

/** The lengths of a ledger's windows, ms. */
export interface BudgetWindows {
  minute: number;
  hour: number;
}

/** A minute and an hour. */
export const BUDGET_WINDOWS: BudgetWindows = { minute: 60_000, hour: 3_600_000 };

/** One ledger file, read incrementally. */
export class BudgetLedger {
  private readonly byKey = new Map<string, Charge>();
  private readonly ordered: Charge[] = [];
  private dollarsTotal = 0;
  /** Bytes of the file already read (always at a line end). */
  private offset = 0;
  /** Bytes after the last line end: a line torn by a crash (appends are single writes). */
  private tail = 0;
  /** Lines that were not a charge (torn by a crash), skipped. */
  torn = 0;

  constructor(readonly path: string) {}

  /** Reads the lines appended since the last read, by this process or another. */
  async refresh(): Promise<void> {
    const file = await open(this.path, "r").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw err;
    });
    if (!file) return;
    try {
      const { size } = await file.stat();
      this.tail = size - this.offset;
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      const { bytesRead } = await file.read(buf, 0, buf.length, this.offset);
      const text = buf.subarray(0, bytesRead).toString("utf8");
      // A line another process is still writing is read next time.
      const end = text.lastIndexOf("\n");
      if (end < 0) return;
      for (const line of text.slice(0, end).split("\n")) if (line !== "") this.addLine(line);
      this.offset += Buffer.byteLength(text.slice(0, end + 1));
      this.tail = size - this.offset;
    } finally {
      await file.close();
    }
  }

  private addLine(line: string): void {
    let c: Charge;
    try {
      c = JSON.parse(line) as Charge;
    } catch {
      this.torn++;
      return;
    }
    this.add(c);
  }

  private add(c: Charge): boolean {
    if (this.byKey.has(c.key)) return false;
    this.byKey.set(c.key, c);
    this.ordered.push(c);
    this.dollarsTotal += c.cost;
    return true;
  }

  /** Whether a charge with this key is already counted (as of the last read). */
  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Appends a charge unless its key is counted already; true when it was new. */
  async charge(c: Charge): Promise<boolean> {
    await this.refresh();
    if (this.byKey.has(c.key)) return false;
    await mkdir(dirname(this.path), { recursive: true });
    // After a torn line, start a new one so this charge is not glued to it.
    await appendFile(this.path, `${this.tail > 0 ? "\n" : ""}${JSON.stringify(c)}\n`);
    // Read back our own line (and any other process's) so the offset stays at a line end.
    await this.refresh();
    return true;
  }

  /** Spend over the last minute, the last hour, and in total, as of `now`. */
  spend(now: number, windows: BudgetWindows = BUDGET_WINDOWS): Spend {
    let tokensLastMinute = 0;
    let dollarsLastHour = 0;
    for (const c of this.ordered) {
      if (c.at > now - windows.hour) dollarsLastHour += c.cost;
      if (c.at > now - windows.minute) tokensLastMinute += c.tokens;
    }
    return { tokensLastMinute, dollarsLastHour, dollarsTotal: this.dollarsTotal, charges: this.ordered.length };
  }

  /**
   * The first time after `now` at which the charges leaving a window of `windowMs` have taken at
   * least `excess` (of tokens or of cost) out of it; null when all the charges in it are not enough.
   */
  freedAt(now: number, windowMs: number, of: "tokens" | "cost", excess: number): number | null {
    const inWindow = this.ordered.filter((c) => c.at > now - windowMs).sort((a, b) => a.at - b.at);
    let freed = 0;
    for (const c of inWindow) {
      freed += c[of];
      // A charge has left the window once `at` is windowMs old (spend counts `at > now - windowMs`).
      if (freed >= excess - 1e-9) return c.at + windowMs;
    }
    return null;
  }
}
