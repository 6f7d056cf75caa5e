// npm's postinstall: applies patches/ (our fixes to dependencies) with patch-package when this
// checkout is the project being installed. Installed as another project's dependency, the packages
// it patches are hoisted outside it, where patch-package would not find them: it then does nothing.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { resolve } from "node:path";

const root = process.env.INIT_CWD;
if (root && resolve(root) !== resolve(process.cwd())) process.exit(0);
const bin = createRequire(import.meta.url).resolve("patch-package/dist/index.js");
const run = spawnSync(process.execPath, [bin, "--error-on-fail"], { stdio: "inherit" });
process.exit(run.status ?? 1);
