/**
 * The agent router's command branch: a safety check, then a real run of a whitelisted, read-only
 * program in a sandbox. The message's text never reaches a command line: it only selects one of a
 * few fixed argument vectors, run without a shell, in an empty temporary folder, with a bare
 * environment, a time limit and an output cap. A command no rule matches is answered, not run.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MapFunction, type FunctionContext } from "sage-temporal";

/** A whitelisted command: the messages it answers and the fixed program it runs. */
export interface WhitelistedCommand {
  name: string;
  matches: RegExp;
  argv: readonly string[];
}

/** What may run. Each program only reads, and coreutils has them all. */
export const WHITELIST: readonly WhitelistedCommand[] = [
  { name: "disk usage", matches: /\bdisk (usage|space)\b/i, argv: ["df", "-h", "."] },
  { name: "date", matches: /\b(date|clock)\b/i, argv: ["date", "-u"] },
  { name: "kernel version", matches: /\b(kernel|os) version\b/i, argv: ["uname", "-srm"] },
  { name: "processor count", matches: /\b(cpus?|cores|processors)\b/i, argv: ["nproc"] },
  { name: "file list", matches: /\blist (the )?files\b/i, argv: ["ls", "-la"] },
];

/** What the safety check refuses outright: destructive programs and anything shaped like shell syntax. */
export const DENIED = /\brm\s+-\w*[rf]|\bsudo\b|\bmkfs\b|\bdd\s+if=|\bshutdown\b|[;&|`$<>]/i;

/** The whitelisted command a message asks for, if any. */
export function commandFor(text: string): WhitelistedCommand | undefined {
  return WHITELIST.find((c) => c.matches.test(text));
}

/** A command's run: its exit code (null when it was killed) and the start of its output. */
export interface CommandRun {
  name: string;
  argv: readonly string[];
  exitCode: number | null;
  output: string;
}

const TIMEOUT_MS = 5_000;
const MAX_OUTPUT = 2_000;

/** Runs a whitelisted command in `sandbox`: no shell, bare environment, time limit, output cap. */
export function runSandboxed(command: WhitelistedCommand, sandbox: string): Promise<CommandRun> {
  const [file, ...args] = command.argv;
  return new Promise((resolve) => {
    execFile(
      file!,
      args,
      { cwd: sandbox, env: { PATH: "/usr/bin:/bin", LC_ALL: "C" }, timeout: TIMEOUT_MS, maxBuffer: 64 * 1024, shell: false },
      (err, stdout, stderr) => {
        const code = err && typeof err.code === "number" ? err.code : err ? null : 0;
        const output = `${stdout}${stderr}`.trim().slice(0, MAX_OUTPUT);
        resolve({ name: command.name, argv: command.argv, exitCode: code, output: output || (err?.message ?? "") });
      },
    );
  });
}

/** The command branch's reply: what ran and what it printed, or why nothing ran. */
export interface CommandReply {
  reply: string;
  command?: CommandRun;
}

/** Runs the whitelisted command a message names, in a sandbox folder the operator owns. */
export class CommandRunner<T extends { text: string }> extends MapFunction<T, T & CommandReply> {
  private sandbox = "";
  async open(_ctx: FunctionContext): Promise<void> {
    this.sandbox = await mkdtemp(join(tmpdir(), "sage-agent-sandbox-"));
  }
  async close(): Promise<void> {
    if (this.sandbox) await rm(this.sandbox, { recursive: true, force: true });
  }
  async map(m: T): Promise<T & CommandReply> {
    const command = commandFor(m.text);
    if (!command) {
      const allowed = WHITELIST.map((c) => c.name).join(", ");
      return { ...m, reply: `Not run: no whitelisted command matches this request (allowed: ${allowed}).` };
    }
    const run = await runSandboxed(command, this.sandbox);
    const status = run.exitCode === 0 ? "Ran" : run.exitCode === null ? "Could not run" : `Failed (exit ${run.exitCode})`;
    return { ...m, reply: `${status} \`${command.argv.join(" ")}\`:\n${run.output}`, command: run };
  }
}
