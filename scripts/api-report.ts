/**
 * The public API report: each entry point of package.json `exports`, every name it exports with its
 * declaration as TypeScript's declaration emit writes it (kind, signature, public members), into
 * api/sage-temporal.api.md. `--check` (run by `npm run lint`) fails when the committed report
 * differs from the code, so that a change to the public API shows up in review as a change there.
 *
 *   npx tsx scripts/api-report.ts           # rewrite the report
 *   npx tsx scripts/api-report.ts --check   # compare only
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import ts from "typescript";

const ROOT = resolve(import.meta.dirname, "..");
const REPORT = resolve(ROOT, "api", "sage-temporal.api.md");
const printer = ts.createPrinter({ removeComments: true, newLine: ts.NewLineKind.LineFeed });

/** One entry point: the subpath users import and the file it maps to. */
interface Entry {
  specifier: string;
  file: string;
}

/** The entry points of package.json `exports` that are TypeScript modules, in the order given there. */
function entries(): Entry[] {
  const pkg = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { name: string; exports: Record<string, string> };
  return Object.entries(pkg.exports)
    .filter(([, file]) => file.endsWith(".ts"))
    .map(([path, file]) => ({ specifier: path === "." ? pkg.name : `${pkg.name}/${path.slice(2)}`, file: resolve(ROOT, file) }));
}

/** A program over the entry points with the project's compiler options, set up for declaration emit. */
function program(roots: string[]): ts.Program {
  const parsed = ts.getParsedCommandLineOfConfigFile(resolve(ROOT, "tsconfig.json"), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (!parsed) throw new Error("cannot read tsconfig.json");
  const options = { ...parsed.options, noEmit: false, declaration: true, emitDeclarationOnly: true, stripInternal: true };
  return ts.createProgram(roots, options);
}

/** Declaration files of the program's sources, emitted in memory on first use. */
class Declarations {
  private readonly byFile = new Map<string, ts.SourceFile>();
  constructor(private readonly prog: ts.Program) {}

  /** The emitted declarations of `source`, parsed. */
  of(source: ts.SourceFile): ts.SourceFile {
    const known = this.byFile.get(source.fileName);
    if (known) return known;
    let text = "";
    this.prog.emit(source, (name, data) => (text = name.endsWith(".d.ts") ? data : text), undefined, true);
    const parsed = ts.createSourceFile(`${source.fileName}.d.ts`, text, ts.ScriptTarget.Latest, true);
    this.byFile.set(source.fileName, parsed);
    return parsed;
  }
}

/** The name a top-level declaration statement declares, if any. */
function declaredName(statement: ts.Statement): string | undefined {
  if (ts.isVariableStatement(statement)) {
    const first = statement.declarationList.declarations[0];
    return first && ts.isIdentifier(first.name) ? first.name.text : undefined;
  }
  const named = statement as ts.Statement & { name?: ts.Node };
  return named.name && ts.isIdentifier(named.name) ? named.name.text : undefined;
}

/** Drops `export`/`declare` (every entry here is an export) and private members (not API). */
const tidy: ts.TransformerFactory<ts.Node> = (context) => {
  const visit = (node: ts.Node): ts.Node | undefined => {
    if (node.kind === ts.SyntaxKind.ExportKeyword || node.kind === ts.SyntaxKind.DeclareKeyword) return undefined;
    if (ts.isClassElement(node) && ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Private) return undefined;
    if (ts.isClassElement(node) && node.name && ts.isPrivateIdentifier(node.name)) return undefined;
    return ts.visitEachChild(node, visit, context);
  };
  return (root) => ts.visitNode(root, visit)!;
};

/** A declaration as printed, with the names its file uses for the project's own declarations. */
interface Printed {
  text: string;
  locals: Set<string>;
}

/** The declaration of `symbol` as the declaration emit writes it, printed under the name `as`. */
function printDeclaration(symbol: ts.Symbol, as: string, declarations: Declarations): Printed[] {
  const seen = new Set<ts.SourceFile>();
  const out: Printed[] = [];
  for (const decl of symbol.declarations ?? []) {
    const source = decl.getSourceFile();
    if (seen.has(source)) continue;
    seen.add(source);
    const dts = source.isDeclarationFile ? source : declarations.of(source);
    for (const statement of dts.statements.filter((s) => declaredName(s) === symbol.name)) {
      const [tidied] = ts.transform(statement, [tidy]).transformed;
      let text = printer.printNode(ts.EmitHint.Unspecified, tidied!, dts);
      if (as !== symbol.name) text = text.replace(new RegExp(`\\b${symbol.name}\\b`), as);
      out.push({ text, locals: projectLocals(dts) });
    }
  }
  return out;
}

/** True when `alias` was exported with `export type` (its value side is not public). */
function isTypeOnlyExport(alias: ts.Symbol): boolean {
  return (alias.declarations ?? []).some((d) => ts.isTypeOnlyExportDeclaration(d) || (ts.isExportSpecifier(d) && d.parent.parent.isTypeOnly));
}

/** Names a declaration file may use for the project's own declarations: its locals and what it imports by relative path. */
function projectLocals(dts: ts.SourceFile): Set<string> {
  const names = new Set(dts.statements.map(declaredName).filter((n): n is string => n !== undefined));
  for (const statement of dts.statements) {
    if (!ts.isImportDeclaration(statement) || !(statement.moduleSpecifier as ts.StringLiteral).text.startsWith(".")) continue;
    const bindings = statement.importClause?.namedBindings;
    if (bindings && ts.isNamedImports(bindings)) for (const element of bindings.elements) names.add(element.name.text);
  }
  return names;
}

/** Names of the project's own types that a printed declaration refers to (`locals`: see `projectLocals`). */
function referencedNames(text: string, locals: Set<string>): string[] {
  const names = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isTypeReferenceNode(node) && locals.has(node.typeName.getText().split(".")[0]!)) names.add(node.typeName.getText().split(".")[0]!);
    if (ts.isExpressionWithTypeArguments(node) && locals.has(node.expression.getText())) names.add(node.expression.getText());
    if (ts.isImportTypeNode(node) && node.qualifier && /^["']\./.test(node.argument.getText())) names.add(node.qualifier.getText().split(".")[0]!);
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile("x.d.ts", text, ts.ScriptTarget.Latest, true));
  return [...names];
}

/** One entry point's section: its declarations, and the project types they name but no entry exports. */
interface Section {
  entry: Entry;
  names: string[];
  blocks: string[];
  referenced: Set<string>;
}

/** The exports of one entry point, each printed. */
function section(entry: Entry, prog: ts.Program, declarations: Declarations): Section {
  const checker = prog.getTypeChecker();
  const module = checker.getSymbolAtLocation(prog.getSourceFile(entry.file)!)!;
  const exported = checker.getExportsOfModule(module).sort((a, b) => a.name.localeCompare(b.name));
  const blocks: string[] = [];
  const referenced = new Set<string>();
  for (const alias of exported) {
    const target = alias.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(alias) : alias;
    const printed = printDeclaration(target, alias.name, declarations);
    if (printed.length === 0) throw new Error(`${entry.specifier}: no declaration found for ${alias.name}`);
    for (const p of printed) for (const name of referencedNames(p.text, p.locals)) referenced.add(name);
    const typeOnly = isTypeOnlyExport(alias) && target.flags & ts.SymbolFlags.Value;
    blocks.push([...(typeOnly ? ["// type only: the value is not exported"] : []), ...printed.map((p) => p.text)].join("\n"));
  }
  return { entry, names: exported.map((s) => s.name), blocks, referenced };
}

/** The report's text. */
function render(sections: Section[]): string {
  const everyExport = new Set(sections.flatMap((s) => s.names));
  const lines = [
    "# The public API of sage-temporal",
    "",
    "Generated by `npx tsx scripts/api-report.ts` from the entry points in package.json `exports`; do not edit.",
    "`npm run lint` fails when this file differs from the code: a change here is a change to the public API.",
  ];
  for (const s of sections) {
    const hidden = [...s.referenced].filter((n) => !everyExport.has(n)).sort();
    lines.push("", `## ${s.entry.specifier} (${relative(ROOT, s.entry.file)}): ${s.names.length} names`, "", s.names.join(", "), "");
    if (hidden.length > 0) lines.push(`Named in these declarations but exported by no entry point: ${hidden.join(", ")}.`, "");
    lines.push("```ts", s.blocks.join("\n\n"), "```");
  }
  return `${lines.join("\n")}\n`;
}

/** Lines of `a` missing from `b`, in order (a short, readable difference). */
function missing(a: string, b: string): string[] {
  const have = new Set(b.split("\n"));
  return a.split("\n").filter((l) => !have.has(l));
}

/** Writes the report, or with `--check` compares it with the committed one. */
function main(): void {
  const list = entries();
  const prog = program(list.map((e) => e.file));
  const declarations = new Declarations(prog);
  const report = render(list.map((e) => section(e, prog, declarations)));
  const committed = existsSync(REPORT) ? readFileSync(REPORT, "utf8") : "";
  if (!process.argv.includes("--check")) {
    mkdirSync(dirname(REPORT), { recursive: true });
    writeFileSync(REPORT, report);
    console.log(`api-report: wrote ${relative(ROOT, REPORT)} (${list.length} entry points)`);
    return;
  }
  if (committed === report) return;
  const removed = missing(committed, report).map((l) => `- ${l}`);
  const added = missing(report, committed).map((l) => `+ ${l}`);
  const changes = removed.length + added.length > 0 ? [...removed, ...added] : ["(the same lines, in another order)"];
  console.error(
    [`api-report: ${relative(ROOT, REPORT)} differs from the code's public API:`, ...changes].join("\n") +
      "\nIf the change is meant, run `npx tsx scripts/api-report.ts` and commit the report with it.",
  );
  process.exitCode = 1;
}

main();
