/**
 * Reads the lines of one byte range of a file. A line belongs to the split in which it starts, so
 * adjacent splits together yield every line exactly once (Hadoop's rule).
 */
import { open } from "node:fs/promises";

/** One line, the byte offset where it starts and its length in bytes (without the line break). */
export interface Line {
  text: string;
  offset: number;
  bytes: number;
}

const NEWLINE = 0x0a;
const CHUNK = 1 << 20;

/** Yields the lines that start in `[start, end)` of `path`, without their line breaks, one read chunk at a time. */
export async function* readLines(path: string, start: number, end: number): AsyncGenerator<Line[]> {
  const fh = await open(path, "r");
  try {
    let pos = start > 0 ? start - 1 : 0;
    let skipping = start > 0;
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = pos;
    const chunk = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, CHUNK, pos);
      if (bytesRead === 0) {
        if (!skipping && carry.length > 0 && carryOffset < end) yield [{ text: decode(carry, 0, carry.length), offset: carryOffset, bytes: carry.length }];
        return;
      }
      pos += bytesRead;
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
      let lineStart = 0;
      const lines: Line[] = [];
      let done = false;
      for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, lineStart)) {
        const offset = carryOffset + lineStart;
        if (skipping) skipping = false;
        else if (offset >= end) {
          done = true;
          break;
        } else lines.push({ text: decode(buf, lineStart, i), offset, bytes: i - lineStart });
        lineStart = i + 1;
      }
      if (lines.length > 0) yield lines;
      carryOffset += lineStart;
      if (done || (!skipping && carryOffset >= end)) return;
      carry = Buffer.from(buf.subarray(lineStart));
    }
  } finally {
    await fh.close();
  }
}

function decode(buf: Buffer, from: number, to: number): string {
  const stop = to > from && buf[to - 1] === 0x0d ? to - 1 : to;
  return buf.toString("utf8", from, stop);
}
