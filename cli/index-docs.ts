/** `sage index <docs-folder>`: chunk, embed and store a folder of documents in the vector index. */
import { resolve } from "node:path";
import { indexDocuments } from "../client/indexer.js";
import { cliLogger, configFrom, ensureServer, uiLink, type GlobalFlags } from "./common.js";

interface IndexFlags extends GlobalFlags {
  index?: string;
  jobId?: string;
}

/** Runs the indexing job and prints what was indexed. */
export async function indexCommand(docs: string, flags: IndexFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "cli");
  await ensureServer(config, (m) => process.stderr.write(`${m}\n`));
  const index = flags.index ?? resolve(config["data-dir"], "index", "docs");
  const r = await indexDocuments({ docs, index, config, logger, ...(flags.jobId ? { jobId: flags.jobId } : {}) });
  const link = uiLink(config, { workflowId: r.workflowId, runId: r.runId });
  process.stdout.write(`indexed ${r.chunks} chunk(s) of ${r.documents} document(s) into ${r.index} (LanceDB)\n${link ? `Web UI: ${link}\n` : ""}`);
}
