/**
 * The one TypeScript compiler the kernel ships (the 6.0 line: the last with
 * the JavaScript compiler API, which the checker, completion and emit use),
 * so analysis parses cells exactly as the session compiles them.
 *
 * Loaded on first use, not when a module that uses it is loaded: it is the
 * biggest module nbscale has (~160 ms to load here), and the kernel answers
 * its first requests, and `nbscale run` runs a cached flow, without it.
 * (Modules import `ts` by name; compiled to CommonJS, each use reads this
 * module's `ts` export, which is the getter below.)
 */
import type * as TS from "typescript";

let loaded: typeof TS | undefined;

export declare const ts: typeof TS;
/** The compiler's types nbscale uses, under the same name (`ts.Node`): types cost nothing at run time. */
// prettier-ignore
export declare namespace ts {
  type __String = TS.__String;
  type BinaryExpression = TS.BinaryExpression;
  type BindingName = TS.BindingName;
  type Block = TS.Block;
  type CallExpression = TS.CallExpression;
  type CaseBlock = TS.CaseBlock;
  type CatchClause = TS.CatchClause;
  type ClassDeclaration = TS.ClassDeclaration;
  type ClassLikeDeclaration = TS.ClassLikeDeclaration;
  type CompilerOptions = TS.CompilerOptions;
  type CompletionEntry = TS.CompletionEntry;
  type CompletionInfo = TS.CompletionInfo;
  type ConditionalTypeNode = TS.ConditionalTypeNode;
  type Diagnostic = TS.Diagnostic;
  type DiagnosticCategory = TS.DiagnosticCategory;
  type DiagnosticMessageChain = TS.DiagnosticMessageChain;
  type DiagnosticWithLocation = TS.DiagnosticWithLocation;
  type EntityName = TS.EntityName;
  type EnumDeclaration = TS.EnumDeclaration;
  type ExportDeclaration = TS.ExportDeclaration;
  type Expression = TS.Expression;
  type ExpressionWithTypeArguments = TS.ExpressionWithTypeArguments;
  type ForInStatement = TS.ForInStatement;
  type ForOfStatement = TS.ForOfStatement;
  type ForStatement = TS.ForStatement;
  type FunctionDeclaration = TS.FunctionDeclaration;
  type FunctionLikeDeclarationBase = TS.FunctionLikeDeclarationBase;
  type Identifier = TS.Identifier;
  type ImportDeclaration = TS.ImportDeclaration;
  type ImportEqualsDeclaration = TS.ImportEqualsDeclaration;
  type ImportTypeNode = TS.ImportTypeNode;
  type InferTypeNode = TS.InferTypeNode;
  type InterfaceDeclaration = TS.InterfaceDeclaration;
  type JsxEmit = TS.JsxEmit;
  type LabeledStatement = TS.LabeledStatement;
  type LanguageService = TS.LanguageService;
  type LanguageServiceHost = TS.LanguageServiceHost;
  type MappedTypeNode = TS.MappedTypeNode;
  type ModuleDeclaration = TS.ModuleDeclaration;
  type ModuleKind = TS.ModuleKind;
  type ModuleResolutionKind = TS.ModuleResolutionKind;
  type NamedTupleMember = TS.NamedTupleMember;
  type NewLineKind = TS.NewLineKind;
  type Node = TS.Node;
  type NodeArray<T extends TS.Node> = TS.NodeArray<T>;
  type NodeFlags = TS.NodeFlags;
  type ObjectBindingPattern = TS.ObjectBindingPattern;
  type ParameterDeclaration = TS.ParameterDeclaration;
  type PostfixUnaryExpression = TS.PostfixUnaryExpression;
  type PrefixUnaryExpression = TS.PrefixUnaryExpression;
  type Program = TS.Program;
  type PropertyAccessExpression = TS.PropertyAccessExpression;
  type PropertyAssignment = TS.PropertyAssignment;
  type PropertyName = TS.PropertyName;
  type PropertySignature = TS.PropertySignature;
  type QualifiedName = TS.QualifiedName;
  type QuickInfo = TS.QuickInfo;
  type ScriptKind = TS.ScriptKind;
  type ScriptTarget = TS.ScriptTarget;
  type ShorthandPropertyAssignment = TS.ShorthandPropertyAssignment;
  type SignatureDeclaration = TS.SignatureDeclaration;
  type SignatureDeclarationBase = TS.SignatureDeclarationBase;
  type SourceFile = TS.SourceFile;
  type Statement = TS.Statement;
  type Symbol = TS.Symbol;
  type SymbolFlags = TS.SymbolFlags;
  type SyntaxKind = TS.SyntaxKind;
  type TypeAliasDeclaration = TS.TypeAliasDeclaration;
  type TypeChecker = TS.TypeChecker;
  type TypeFormatFlags = TS.TypeFormatFlags;
  type TypeNode = TS.TypeNode;
  type TypeParameterDeclaration = TS.TypeParameterDeclaration;
  type TypePredicateNode = TS.TypePredicateNode;
  type TypeQueryNode = TS.TypeQueryNode;
  type TypeReferenceNode = TS.TypeReferenceNode;
  type VariableDeclaration = TS.VariableDeclaration;
  type VariableDeclarationList = TS.VariableDeclarationList;
}
Object.defineProperty(exports, "ts", {
  enumerable: true,
  configurable: true,
  get: (): typeof TS => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires -- the point: required on first use
    loaded ??= require("typescript") as typeof TS;
    // From now on a plain property: the checker and analysis read `ts.` in their hottest loops.
    Object.defineProperty(exports, "ts", { enumerable: true, value: loaded });
    return loaded;
  },
});

/** The compiler's version, read from its package.json without loading it. */
export function typescriptVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-var-requires -- a JSON file, not the compiler
  return loaded?.version ?? (require("typescript/package.json") as { version: string }).version;
}
