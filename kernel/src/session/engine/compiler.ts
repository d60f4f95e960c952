/**
 * Type-checks and compiles cells with the stock TypeScript language service.
 *
 * The session's declarations are one global declaration file (`declare const
 * n: number;`, interfaces, classes, import aliases written as `import("m")`
 * types). A cell is checked as a module next to it, so what the cell declares
 * shadows the older global of the same name — redeclaring in a later cell is
 * allowed and the later cell wins — while names it does not declare resolve
 * to the session's. The cell's own declarations then become globals for the
 * next cell (session-decls.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ts } from "../../step/typescript";

export interface Position {
  line: number;
  character: number;
}

export interface Diagnostic {
  start: Position;
  end: Position;
  messageText: string;
  category: number;
  code: number;
  /** Set for diagnostics in another file (a module the cell imports), relative to the notebook folder. */
  fileName?: string;
}

export interface CompilerOptions {
  cwd: string;
  /** Folder of the `nbscale` package: its types resolve from any notebook folder. */
  packageDir: string;
  /** Declarations that stand in for tslab's own types (tslab's import the whole compiler API). */
  tslabTypesDir: string;
}

export interface CellFiles {
  /** The session's declarations (global declaration file text). */
  session: string;
  /** The cell as the checker sees it. */
  cell: string;
  jsx: boolean;
}

const LINE_FEED = "\n";

/** Standard-library declarations that match what the running Node implements. */
export function libFor(nodeMajor: number): string[] {
  if (nodeMajor >= 24) return ["lib.es2025.d.ts", "lib.esnext.disposable.d.ts", "lib.esnext.error.d.ts"];
  if (nodeMajor >= 22) return ["lib.es2024.d.ts", "lib.es2025.collection.d.ts", "lib.es2025.iterator.d.ts", "lib.esnext.disposable.d.ts"];
  return ["lib.es2023.d.ts", "lib.esnext.disposable.d.ts"];
}

export class CellCompiler {
  readonly sessionFile: string;
  private readonly cellTs: string;
  private readonly cellTsx: string;
  private readonly files = new Map<string, { text: string; version: number }>();
  /** `@module` cells: virtual files other cells import by name. */
  private readonly moduleFiles = new Set<string>();
  private cellFile: string;
  /** Bumped when packages may have changed on disk (e.g. `npm install`): library files are read again. */
  private epoch = 0;
  private resolutionsInvalid = false;
  private readonly service: ts.LanguageService;
  readonly options: ts.CompilerOptions;
  private readonly nodeTypes: string | null;
  private readonly forwards: Array<[string, string]>;
  /** Answers about packages and the standard library, which change only through installs (epoch). */
  private cache = new FsCache();

  constructor(private readonly opts: CompilerOptions) {
    const { cwd } = opts;
    this.sessionFile = path.join(cwd, "__nbscale_session__.d.ts");
    this.cellTs = path.join(cwd, "__nbscale_cell__.ts");
    this.cellTsx = path.join(cwd, "__nbscale_cell__.tsx");
    this.cellFile = this.cellTs;
    this.files.set(this.sessionFile, { text: "", version: 0 });
    this.files.set(this.cellTs, { text: "export {};", version: 0 });
    this.files.set(this.cellTsx, { text: "export {};", version: 0 });
    const major = Number(process.versions.node.split(".")[0]);
    this.nodeTypes = this.ownNodeTypes();
    this.forwards = [[path.join(cwd, "node_modules", "tslab"), opts.tslabTypesDir]];
    const own = path.join(cwd, "node_modules", "nbscale");
    if (!fs.existsSync(own)) this.forwards.push([own, opts.packageDir]);
    this.options = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Preserve,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: libFor(major),
      types: ["*"],
      typeRoots: [path.join(cwd, "node_modules", "@types")],
      esModuleInterop: true,
      allowSyntheticDefaultImports: true,
      resolveJsonModule: true,
      allowJs: true,
      checkJs: false,
      jsx: ts.JsxEmit.React,
      // tslab's notebooks were checked without --strict; TypeScript 6 turns it on by default.
      strict: false,
      noImplicitAny: false,
      skipLibCheck: true,
      declaration: true,
      sourceMap: true,
      newLine: ts.NewLineKind.LineFeed,
      outDir: path.join(cwd, "__nbscale_out__"),
      rootDir: cwd,
      noEmit: false,
      allowArbitraryExtensions: true,
    };
    // `hasInvalidatedResolutions` is read by the service (isProgramUptoDate) but not in the public host type.
    const host: ts.LanguageServiceHost & { hasInvalidatedResolutions(file: string): boolean } = {
      getCompilationSettings: () => this.options,
      getScriptFileNames: () => [this.sessionFile, this.cellFile, ...this.moduleFiles, ...(this.nodeTypes ? [this.nodeTypes] : [])],
      getScriptVersion: (f) => this.version(f),
      // After an install, module names that failed to resolve must be resolved again.
      hasInvalidatedResolutions: () => this.resolutionsInvalid,
      getScriptSnapshot: (f) => {
        const text = this.read(f);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => cwd,
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: (f) => this.files.has(f) || this.cached("exists", f, () => ts.sys.fileExists(this.forward(f))),
      readFile: (f) => this.read(f),
      directoryExists: (d) => this.isVirtualDir(d) || this.cached("dir", d, () => ts.sys.directoryExists(this.forward(d))),
      getDirectories: (d) => this.cached("dirs", d, () => ts.sys.getDirectories(this.forward(d))),
      readDirectory: (d, ext, exc, inc, depth) => ts.sys.readDirectory(this.forward(d), ext, exc, inc, depth),
      realpath: (f) => (this.files.has(f) ? f : ts.sys.realpath ? ts.sys.realpath(this.forward(f)) : f),
      useCaseSensitiveFileNames: () => true,
      getNewLine: () => LINE_FEED,
    };
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry(true, cwd));
  }

  /** The kernel's own Node types, for notebook folders without @types/node. */
  private ownNodeTypes(): string | null {
    if (fs.existsSync(path.join(this.opts.cwd, "node_modules", "@types", "node", "index.d.ts"))) return null;
    try {
      return require.resolve("@types/node/index.d.ts");
    } catch {
      return null;
    }
  }

  /** Where the compiler should look instead: nbscale's and tslab's types resolve from any folder. */
  private forward(p: string): string {
    for (const [from, to] of this.forwards) {
      const rel = path.relative(from, p);
      if (rel.startsWith("..") || path.isAbsolute(rel)) continue;
      if (rel.split(path.sep)[0] === "node_modules") continue;
      return path.join(to, rel);
    }
    return p;
  }

  private isVirtualDir(d: string): boolean {
    const nm = path.join(this.opts.cwd, "node_modules");
    return d === nm || d === path.join(nm, "nbscale") || d === path.join(nm, "tslab");
  }

  private read(f: string): string | undefined {
    const v = this.files.get(f);
    if (v) return v.text;
    return this.cached("read", f, () => ts.sys.readFile(this.forward(f)));
  }

  /** Whether a path is the notebook's own (read fresh every time) rather than a package's or the library's. */
  private isLocal(p: string): boolean {
    return p.startsWith(this.opts.cwd + path.sep) && !p.includes(`${path.sep}node_modules${path.sep}`) && !p.endsWith(`${path.sep}node_modules`);
  }

  private cached<T>(kind: string, p: string, get: () => T): T {
    if (this.isLocal(p)) return get();
    return this.cache.get(kind, p, get);
  }

  private version(f: string): string {
    const v = this.files.get(f);
    if (v) return String(v.version);
    // Packages and the standard library change only through installs (epoch); the user's own files by mtime.
    if (f.includes(`${path.sep}node_modules${path.sep}`) || !f.startsWith(this.opts.cwd + path.sep)) return `e${this.epoch}`;
    try {
      const st = fs.statSync(f);
      return `${st.mtimeMs}:${st.size}`;
    } catch {
      return "missing";
    }
  }

  private setFile(f: string, text: string): void {
    const cur = this.files.get(f);
    if (cur && cur.text === text) return;
    this.files.set(f, { text, version: (cur?.version ?? 0) + 1 });
  }

  /** Packages changed on disk: read library files again on the next check. */
  invalidatePackages(): void {
    this.epoch++;
    this.cache = new FsCache();
    this.resolutionsInvalid = true;
  }

  /** Registers an `@module` cell as `<notebook folder>/<name>.ts` (or .tsx). */
  setModule(name: string, text: string, jsx: boolean): string {
    const file = path.join(this.opts.cwd, `${name}${jsx ? ".tsx" : ".ts"}`);
    this.setFile(file, text);
    this.moduleFiles.add(file);
    return file;
  }

  isModuleFile(file: string): boolean {
    return this.moduleFiles.has(file);
  }

  moduleText(file: string): string | undefined {
    return this.moduleFiles.has(file) ? this.files.get(file)?.text : undefined;
  }

  /** Points the service at the given session declarations and cell; returns the cell's source file. */
  load(files: CellFiles): { program: ts.Program; cell: ts.SourceFile } {
    this.cellFile = files.jsx ? this.cellTsx : this.cellTs;
    this.setFile(this.sessionFile, files.session);
    this.setFile(this.cellFile, files.cell);
    const program = this.service.getProgram();
    this.resolutionsInvalid = false;
    if (!program) throw new Error("nbscale: the TypeScript language service has no program");
    const cell = program.getSourceFile(this.cellFile);
    if (!cell) throw new Error("nbscale: the cell is missing from the program");
    return { program, cell };
  }

  get currentCellFile(): string {
    return this.cellFile;
  }

  /** Syntax and type errors of the cell, and of the notebook's own modules it imports. */
  diagnostics(program: ts.Program, cell: ts.SourceFile): Diagnostic[] {
    const out: Diagnostic[] = [];
    const push = (d: ts.Diagnostic) => {
      if (!d.file || d.start === undefined) return;
      const own = d.file === cell;
      const start = d.file.getLineAndCharacterOfPosition(d.start);
      const end = d.file.getLineAndCharacterOfPosition(d.start + (d.length ?? 0));
      const chain = flattenChain(d.messageText);
      out.push({
        start,
        end,
        messageText: chain,
        category: d.category,
        code: d.code,
        ...(own ? {} : { fileName: this.displayName(d.file.fileName) }),
      });
    };
    const syntactic = program.getSyntacticDiagnostics(cell);
    syntactic.forEach(push);
    if (syntactic.length > 0) return out;
    program.getSemanticDiagnostics(cell).forEach(push);
    for (const f of this.localImports(program, cell)) {
      program.getSyntacticDiagnostics(f).forEach(push);
      program.getSemanticDiagnostics(f).forEach(push);
    }
    return out.filter((d) => d.category === ts.DiagnosticCategory.Error);
  }

  private displayName(file: string): string {
    const rel = path.relative(this.opts.cwd, file);
    return rel.startsWith("..") ? file : rel;
  }

  /** The notebook folder's own TypeScript files the cell imports, directly or through each other. */
  localImports(program: ts.Program, cell: ts.SourceFile): ts.SourceFile[] {
    const seen = new Set<ts.SourceFile>();
    const queue = [cell];
    while (queue.length > 0) {
      const sf = queue.pop() as ts.SourceFile;
      for (const spec of moduleSpecifiers(sf)) {
        const r = ts.resolveModuleName(spec, sf.fileName, this.options, {
          fileExists: (f) => this.files.has(f) || ts.sys.fileExists(f),
          readFile: (f) => this.read(f),
        }).resolvedModule;
        if (!r || r.isExternalLibraryImport) continue;
        const target = program.getSourceFile(r.resolvedFileName);
        if (!target || seen.has(target) || target.isDeclarationFile || target.fileName === this.sessionFile) continue;
        seen.add(target);
        queue.push(target);
      }
    }
    return [...seen];
  }

  /** Emits the cell: JavaScript (ES module syntax), its source map, and its declarations. */
  emit(program: ts.Program, cell: ts.SourceFile): { js: string; map: string; dts: string } {
    let js = "";
    let map = "";
    let dts = "";
    program.emit(cell, (name, text) => {
      if (name.endsWith(".d.ts")) dts = text;
      else if (name.endsWith(".map")) map = text;
      else if (name.endsWith(".js")) js = text;
    });
    return { js, map, dts };
  }

  checker(): ts.TypeChecker {
    const p = this.service.getProgram();
    if (!p) throw new Error("nbscale: no program");
    return p.getTypeChecker();
  }

  completions(pos: number): ts.CompletionInfo | undefined {
    return this.service.getCompletionsAtPosition(this.cellFile, pos, { includeCompletionsWithInsertText: false });
  }

  quickInfo(pos: number): ts.QuickInfo | undefined {
    return this.service.getQuickInfoAtPosition(this.cellFile, pos);
  }

  dispose(): void {
    this.service.dispose();
  }
}

class FsCache {
  private readonly maps = new Map<string, Map<string, unknown>>();

  get<T>(kind: string, key: string, compute: () => T): T {
    let m = this.maps.get(kind);
    if (!m) this.maps.set(kind, (m = new Map()));
    if (m.has(key)) return m.get(key) as T;
    const v = compute();
    m.set(key, v);
    return v;
  }
}

export function flattenChain(m: string | ts.DiagnosticMessageChain): string {
  return ts.flattenDiagnosticMessageText(m, "\n");
}

function moduleSpecifiers(sf: ts.SourceFile): string[] {
  const out: string[] = [];
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      out.push(st.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(st) && ts.isExternalModuleReference(st.moduleReference) && ts.isStringLiteral(st.moduleReference.expression)) {
      out.push(st.moduleReference.expression.text);
    }
  }
  return out.filter((s) => s.startsWith("."));
}
