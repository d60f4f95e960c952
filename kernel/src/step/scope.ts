import { ts } from "./typescript";

export type Space = "value" | "type";

/** One use of a name that no enclosing scope inside the walked code binds. */
export interface Reference {
  name: string;
  space: Space;
  /** Used only in type positions (a type name, or `typeof x` in a type). */
  typeOnly: boolean;
  /**
   * Evaluated when the enclosing top-level declaration runs (a class's
   * `extends`, a static initializer), as opposed to later, inside a function
   * body. Eager uses decide the order in which shipped source must run.
   */
  eager: boolean;
  /** Some use reads the name. */
  read: boolean;
  /** Some use assigns it (`x = …`, `x++`, a destructuring target). */
  write: boolean;
  /** Bound by a top-level declaration of the same cell. */
  local: boolean;
  /** Offset of the first use in the cell. */
  pos: number;
}

class Scope {
  private readonly values = new Set<string>();
  private readonly types = new Set<string>();
  constructor(
    readonly parent: Scope | undefined,
    /** Function bodies, namespaces and the cell itself take `var`s. */
    readonly hoistsVars: boolean,
  ) {}
  declare(name: string, value: boolean, type: boolean): void {
    if (value) this.values.add(name);
    if (type) this.types.add(name);
  }
  has(name: string, space: Space): boolean {
    return space === "value" ? this.values.has(name) : this.types.has(name);
  }
  functionScope(): Scope {
    return !this.hoistsVars && this.parent ? this.parent.functionScope() : this;
  }
}

/** Identifiers a binding name or pattern introduces. */
export function bindingNames(name: ts.BindingName, out: ts.Identifier[] = []): ts.Identifier[] {
  if (ts.isIdentifier(name)) {
    out.push(name);
  } else {
    for (const element of name.elements) {
      if (!ts.isOmittedExpression(element)) bindingNames(element.name, out);
    }
  }
  return out;
}

function isFunctionLike(node: ts.Node): node is ts.SignatureDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  );
}

function leftmost(name: ts.EntityName | ts.Expression): ts.Identifier | undefined {
  let n: ts.Node = name;
  for (;;) {
    if (ts.isIdentifier(n)) return n;
    if (ts.isQualifiedName(n)) n = n.left;
    else if (ts.isPropertyAccessExpression(n)) n = n.expression;
    else return undefined;
  }
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  const mods = ts.canHaveModifiers(node) ? ts.getModifiers(node) : undefined;
  return mods?.some((m) => m.kind === kind) ?? false;
}

function isAssignmentOperator(kind: ts.SyntaxKind): boolean {
  return kind >= ts.SyntaxKind.FirstAssignment && kind <= ts.SyntaxKind.LastAssignment;
}

/**
 * Walks one cell, resolving every identifier against the scopes it sits in.
 * Uses that no scope inside the cell binds are reported as references;
 * `onTopLevel` lets the caller attribute them to the top-level declaration
 * being walked (so a shipped function knows what it needs).
 */
export class ScopeWalker {
  private readonly top = new Scope(undefined, true);
  private scope = this.top;
  private deferred = 0;
  private typeDepth = 0;
  private writing = 0;
  private sink: Reference[] | undefined;
  readonly cellRefs: Reference[] = [];

  constructor(private readonly sf: ts.SourceFile) {}

  /** Pre-declares the cell's top-level names (everything is hoisted for lookup). */
  declareTopLevel(): void {
    this.declareStatements(this.sf.statements, this.top);
  }

  isTopLevel(name: string, space: Space): boolean {
    return this.top.has(name, space);
  }

  /** Walks `node` at top level, collecting its references into `sink`. */
  walkTopLevel(node: ts.Node, sink: Reference[] | undefined): void {
    const previous = this.sink;
    this.sink = sink;
    this.visit(node);
    this.sink = previous;
  }

  private ref(id: ts.Identifier, space: Space): void {
    const name = id.text;
    for (let s: Scope | undefined = this.scope; s && s !== this.top; s = s.parent) {
      if (s.has(name, space)) return;
    }
    const r: Reference = {
      name,
      space,
      typeOnly: this.typeDepth > 0 || space === "type",
      eager: this.deferred === 0 && this.typeDepth === 0,
      read: this.writing === 0,
      write: this.writing > 0,
      local: this.top.has(name, space),
      pos: id.getStart(this.sf),
    };
    this.sink?.push(r);
    if (!r.local) this.cellRefs.push(r);
  }

  private withScope(scope: Scope, body: () => void): void {
    const previous = this.scope;
    this.scope = scope;
    try {
      body();
    } finally {
      this.scope = previous;
    }
  }

  private deferredWhile(body: () => void): void {
    this.deferred++;
    try {
      body();
    } finally {
      this.deferred--;
    }
  }

  private inType(body: () => void): void {
    this.typeDepth++;
    try {
      body();
    } finally {
      this.typeDepth--;
    }
  }

  /** Block-scoped declarations of a statement list, plus hoisted `var`s. */
  private declareStatements(statements: readonly ts.Statement[], scope: Scope): void {
    for (const st of statements) {
      if (ts.isVariableStatement(st)) {
        const isVar = (st.declarationList.flags & ts.NodeFlags.BlockScoped) === 0;
        const target = isVar ? scope.functionScope() : scope;
        for (const d of st.declarationList.declarations) {
          for (const id of bindingNames(d.name)) target.declare(id.text, true, false);
        }
      } else if (ts.isFunctionDeclaration(st)) {
        if (st.name) scope.declare(st.name.text, true, false);
      } else if (ts.isClassDeclaration(st) || ts.isEnumDeclaration(st) || ts.isModuleDeclaration(st)) {
        if (st.name && ts.isIdentifier(st.name)) scope.declare(st.name.text, true, true);
      } else if (ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) {
        scope.declare(st.name.text, false, true);
      } else if (ts.isImportDeclaration(st)) {
        const clause = st.importClause;
        if (clause?.name) scope.declare(clause.name.text, true, true);
        const bindings = clause?.namedBindings;
        if (bindings && ts.isNamespaceImport(bindings)) scope.declare(bindings.name.text, true, true);
        if (bindings && ts.isNamedImports(bindings)) {
          for (const el of bindings.elements) scope.declare(el.name.text, true, true);
        }
      } else if (ts.isImportEqualsDeclaration(st)) {
        scope.declare(st.name.text, true, true);
      }
      this.hoistVars(st, scope.functionScope());
    }
  }

  /** `var` inside nested blocks and loops belongs to the enclosing function. */
  private hoistVars(node: ts.Node, fnScope: Scope): void {
    const visitNested = (n: ts.Node): void => {
      if (isFunctionLike(n) || ts.isClassLike(n) || ts.isModuleDeclaration(n)) return;
      if (ts.isVariableDeclarationList(n) && (n.flags & ts.NodeFlags.BlockScoped) === 0) {
        for (const d of n.declarations) for (const id of bindingNames(d.name)) fnScope.declare(id.text, true, false);
      }
      ts.forEachChild(n, visitNested);
    };
    visitNested(node);
  }

  private declareBinding(name: ts.BindingName, scope: Scope): void {
    for (const id of bindingNames(name)) scope.declare(id.text, true, false);
  }

  private declareTypeParameters(params: readonly ts.TypeParameterDeclaration[] | undefined, scope: Scope): void {
    for (const p of params ?? []) scope.declare(p.name.text, false, true);
  }

  /** Defaults and computed keys inside a binding pattern are expressions. */
  private visitBindingName(name: ts.BindingName): void {
    if (ts.isIdentifier(name)) return;
    for (const el of name.elements) {
      if (ts.isOmittedExpression(el)) continue;
      if (el.propertyName && ts.isComputedPropertyName(el.propertyName)) this.visit(el.propertyName.expression);
      this.visitBindingName(el.name);
      if (el.initializer) this.visit(el.initializer);
    }
  }

  private visitPropertyName(name: ts.PropertyName | undefined): void {
    if (name && ts.isComputedPropertyName(name)) this.visit(name.expression);
  }

  private visitFunction(node: ts.SignatureDeclaration): void {
    // Decorators and computed method names run when the class is defined.
    if (ts.canHaveDecorators(node)) for (const d of ts.getDecorators(node) ?? []) this.visit(d);
    if (!ts.isFunctionDeclaration(node) && !ts.isFunctionExpression(node) && !ts.isArrowFunction(node)) {
      this.visitPropertyName(node.name as ts.PropertyName | undefined);
    }
    let outer = this.scope;
    if (ts.isFunctionExpression(node) && node.name) {
      // A named function expression sees its own name, nobody else does.
      outer = new Scope(outer, false);
      outer.declare(node.name.text, true, false);
    }
    const scope = new Scope(outer, true);
    if (!ts.isArrowFunction(node)) scope.declare("arguments", true, false);
    this.declareTypeParameters(node.typeParameters, scope);
    for (const p of node.parameters) this.declareBinding(p.name, scope);
    const body = (node as ts.FunctionLikeDeclarationBase).body;
    this.withScope(scope, () =>
      this.deferredWhile(() => {
        for (const tp of node.typeParameters ?? []) this.visit(tp);
        for (const p of node.parameters) {
          for (const d of ts.getDecorators(p) ?? []) this.visit(d);
          this.visitBindingName(p.name);
          if (p.type) this.visit(p.type);
          if (p.initializer) this.visit(p.initializer);
        }
        if (node.type) this.visit(node.type);
        if (body) {
          if (ts.isBlock(body)) {
            this.declareStatements(body.statements, scope);
            for (const st of body.statements) this.visit(st);
          } else {
            this.visit(body);
          }
        }
      }),
    );
  }

  private visitClass(node: ts.ClassLikeDeclaration): void {
    for (const d of ts.getDecorators(node) ?? []) this.visit(d);
    const scope = new Scope(this.scope, false);
    if (ts.isClassExpression(node) && node.name) scope.declare(node.name.text, true, true);
    this.declareTypeParameters(node.typeParameters, scope);
    this.withScope(scope, () => {
      for (const tp of node.typeParameters ?? []) this.visit(tp);
      for (const clause of node.heritageClauses ?? []) {
        for (const t of clause.types) {
          if (clause.token === ts.SyntaxKind.ExtendsKeyword) {
            this.visit(t.expression);
            if (t.typeArguments) this.inType(() => t.typeArguments!.forEach((a) => this.visit(a)));
          } else {
            this.inType(() => this.visitHeritageType(t));
          }
        }
      }
      for (const member of node.members) {
        if (ts.isPropertyDeclaration(member)) {
          for (const d of ts.getDecorators(member) ?? []) this.visit(d);
          this.visitPropertyName(member.name);
          if (member.type) this.visit(member.type);
          if (member.initializer) {
            const init = member.initializer;
            // Instance fields initialise per `new`, static ones at definition.
            if (hasModifier(member, ts.SyntaxKind.StaticKeyword)) this.visit(init);
            else this.deferredWhile(() => this.visit(init));
          }
        } else if (ts.isClassStaticBlockDeclaration(member)) {
          const block = new Scope(this.scope, true);
          this.withScope(block, () => {
            this.declareStatements(member.body.statements, block);
            member.body.statements.forEach((s) => this.visit(s));
          });
        } else {
          this.visit(member);
        }
      }
    });
  }

  private visitHeritageType(t: ts.ExpressionWithTypeArguments): void {
    const id = leftmost(t.expression);
    if (id) this.ref(id, "type");
    t.typeArguments?.forEach((a) => this.visit(a));
  }

  private visitBlockLike(statements: readonly ts.Statement[]): void {
    const scope = new Scope(this.scope, false);
    this.withScope(scope, () => {
      this.declareStatements(statements, scope);
      for (const st of statements) this.visit(st);
    });
  }

  /** Identifiers on the left of `=` are written (and, for `+=`, also read). */
  private visitAssignmentTarget(target: ts.Expression): void {
    this.writing++;
    try {
      this.visitTarget(target);
    } finally {
      this.writing--;
    }
  }

  private visitTarget(target: ts.Expression): void {
    if (ts.isIdentifier(target)) {
      this.ref(target, "value");
    } else if (ts.isParenthesizedExpression(target) || ts.isNonNullExpression(target)) {
      this.visitTarget(target.expression);
    } else if (ts.isArrayLiteralExpression(target)) {
      for (const el of target.elements) this.visitTarget(ts.isSpreadElement(el) ? el.expression : el);
    } else if (ts.isObjectLiteralExpression(target)) {
      for (const p of target.properties) {
        if (ts.isShorthandPropertyAssignment(p)) {
          this.ref(p.name, "value");
          if (p.objectAssignmentInitializer) this.readOnly(p.objectAssignmentInitializer);
        } else if (ts.isPropertyAssignment(p)) {
          this.readOnly(() => this.visitPropertyName(p.name));
          this.visitTarget(p.initializer);
        } else if (ts.isSpreadAssignment(p)) {
          this.visitTarget(p.expression);
        }
      }
    } else if (ts.isBinaryExpression(target) && target.operatorToken.kind === ts.SyntaxKind.EqualsToken) {
      this.visitTarget(target.left);
      this.readOnly(target.right);
    } else {
      // `obj.x = 1` writes a property, not the name `obj`: that is a read.
      this.readOnly(target);
    }
  }

  private readOnly(node: ts.Node | (() => void)): void {
    const saved = this.writing;
    this.writing = 0;
    try {
      if (typeof node === "function") node();
      else this.visit(node);
    } finally {
      this.writing = saved;
    }
  }

  visit(node: ts.Node): void {
    if (ts.isIdentifier(node)) {
      this.ref(node, "value");
      return;
    }
    if (isFunctionLike(node)) {
      this.visitFunction(node);
      return;
    }
    if (ts.isClassLike(node)) {
      this.visitClass(node);
      return;
    }
    if (ts.isTypeNode(node) && this.typeDepth === 0) {
      this.inType(() => this.visitNode(node));
      return;
    }
    this.visitNode(node);
  }

  private visitNode(node: ts.Node): void {
    switch (node.kind) {
      case ts.SyntaxKind.PropertyAccessExpression:
        this.visit((node as ts.PropertyAccessExpression).expression);
        return;
      case ts.SyntaxKind.QualifiedName:
        this.visit((node as ts.QualifiedName).left);
        return;
      case ts.SyntaxKind.PropertyAssignment: {
        const n = node as ts.PropertyAssignment;
        this.visitPropertyName(n.name);
        this.visit(n.initializer);
        return;
      }
      case ts.SyntaxKind.ShorthandPropertyAssignment: {
        const n = node as ts.ShorthandPropertyAssignment;
        this.ref(n.name, "value");
        if (n.objectAssignmentInitializer) this.visit(n.objectAssignmentInitializer);
        return;
      }
      case ts.SyntaxKind.MetaProperty:
      case ts.SyntaxKind.BreakStatement:
      case ts.SyntaxKind.ContinueStatement:
      case ts.SyntaxKind.DebuggerStatement:
        return;
      case ts.SyntaxKind.LabeledStatement:
        this.visit((node as ts.LabeledStatement).statement);
        return;
      case ts.SyntaxKind.Block:
        this.visitBlockLike((node as ts.Block).statements);
        return;
      case ts.SyntaxKind.CaseBlock: {
        const n = node as ts.CaseBlock;
        const statements = n.clauses.flatMap((c) => [...c.statements]);
        const scope = new Scope(this.scope, false);
        this.withScope(scope, () => {
          this.declareStatements(statements, scope);
          for (const c of n.clauses) {
            if (ts.isCaseClause(c)) this.visit(c.expression);
            c.statements.forEach((s) => this.visit(s));
          }
        });
        return;
      }
      case ts.SyntaxKind.ForStatement:
      case ts.SyntaxKind.ForInStatement:
      case ts.SyntaxKind.ForOfStatement: {
        const n = node as ts.ForStatement | ts.ForInStatement | ts.ForOfStatement;
        const scope = new Scope(this.scope, false);
        const init = n.initializer;
        if (init && ts.isVariableDeclarationList(init) && init.flags & ts.NodeFlags.BlockScoped) {
          for (const d of init.declarations) this.declareBinding(d.name, scope);
        }
        this.withScope(scope, () => {
          if (init && !ts.isVariableDeclarationList(init) && !ts.isForStatement(n)) this.visitAssignmentTarget(init);
          else if (init) this.visit(init);
          ts.forEachChild(n, (child) => {
            if (child !== init) this.visit(child);
          });
        });
        return;
      }
      case ts.SyntaxKind.CatchClause: {
        const n = node as ts.CatchClause;
        const scope = new Scope(this.scope, false);
        if (n.variableDeclaration) this.declareBinding(n.variableDeclaration.name, scope);
        this.withScope(scope, () => {
          if (n.variableDeclaration) this.visit(n.variableDeclaration);
          this.visit(n.block);
        });
        return;
      }
      case ts.SyntaxKind.VariableDeclaration: {
        const n = node as ts.VariableDeclaration;
        this.visitBindingName(n.name);
        if (n.type) this.visit(n.type);
        if (n.initializer) this.visit(n.initializer);
        return;
      }
      case ts.SyntaxKind.Parameter: {
        // Parameters of function *types* (signatures in interfaces, etc.).
        const n = node as ts.ParameterDeclaration;
        if (n.type) this.visit(n.type);
        return;
      }
      case ts.SyntaxKind.BinaryExpression: {
        const n = node as ts.BinaryExpression;
        if (isAssignmentOperator(n.operatorToken.kind)) {
          if (n.operatorToken.kind !== ts.SyntaxKind.EqualsToken) this.readOnly(n.left);
          this.visitAssignmentTarget(n.left);
          this.readOnly(n.right);
          return;
        }
        break;
      }
      case ts.SyntaxKind.PrefixUnaryExpression:
      case ts.SyntaxKind.PostfixUnaryExpression: {
        const n = node as ts.PrefixUnaryExpression | ts.PostfixUnaryExpression;
        if (n.operator === ts.SyntaxKind.PlusPlusToken || n.operator === ts.SyntaxKind.MinusMinusToken) {
          this.readOnly(n.operand);
          this.visitAssignmentTarget(n.operand);
          return;
        }
        break;
      }
      case ts.SyntaxKind.EnumDeclaration: {
        const n = node as ts.EnumDeclaration;
        const scope = new Scope(this.scope, false);
        for (const m of n.members) {
          if (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name)) scope.declare(m.name.text, true, false);
        }
        this.withScope(scope, () => {
          for (const m of n.members) if (m.initializer) this.visit(m.initializer);
        });
        return;
      }
      case ts.SyntaxKind.ModuleDeclaration: {
        const n = node as ts.ModuleDeclaration;
        const scope = new Scope(this.scope, true);
        let body = n.body;
        while (body && ts.isModuleDeclaration(body)) body = body.body;
        if (body && ts.isModuleBlock(body)) {
          const statements = body.statements;
          this.withScope(scope, () => {
            this.declareStatements(statements, scope);
            statements.forEach((s) => this.visit(s));
          });
        }
        return;
      }
      case ts.SyntaxKind.InterfaceDeclaration: {
        const n = node as ts.InterfaceDeclaration;
        const scope = new Scope(this.scope, false);
        this.declareTypeParameters(n.typeParameters, scope);
        this.withScope(scope, () =>
          this.inType(() => {
            n.typeParameters?.forEach((t) => this.visit(t));
            n.heritageClauses?.forEach((c) => c.types.forEach((t) => this.visitHeritageType(t)));
            n.members.forEach((m) => this.visit(m));
          }),
        );
        return;
      }
      case ts.SyntaxKind.TypeAliasDeclaration: {
        const n = node as ts.TypeAliasDeclaration;
        const scope = new Scope(this.scope, false);
        this.declareTypeParameters(n.typeParameters, scope);
        this.withScope(scope, () =>
          this.inType(() => {
            n.typeParameters?.forEach((t) => this.visit(t));
            this.visit(n.type);
          }),
        );
        return;
      }
      case ts.SyntaxKind.TypeParameter: {
        const n = node as ts.TypeParameterDeclaration;
        this.inType(() => {
          if (n.constraint) this.visit(n.constraint);
          if (n.default) this.visit(n.default);
        });
        return;
      }
      case ts.SyntaxKind.PropertySignature:
      case ts.SyntaxKind.PropertyDeclaration: {
        const n = node as ts.PropertySignature;
        this.visitPropertyName(n.name);
        if (n.type) this.visit(n.type);
        return;
      }
      case ts.SyntaxKind.MethodSignature:
      case ts.SyntaxKind.CallSignature:
      case ts.SyntaxKind.ConstructSignature:
      case ts.SyntaxKind.IndexSignature:
      case ts.SyntaxKind.FunctionType:
      case ts.SyntaxKind.ConstructorType: {
        const n = node as ts.SignatureDeclarationBase;
        if (ts.isMethodSignature(n)) this.visitPropertyName(n.name);
        const scope = new Scope(this.scope, false);
        this.declareTypeParameters(n.typeParameters, scope);
        this.withScope(scope, () => {
          n.typeParameters?.forEach((t) => this.visit(t));
          n.parameters.forEach((p) => p.type && this.visit(p.type));
          if (n.type) this.visit(n.type);
        });
        return;
      }
      case ts.SyntaxKind.TypeReference: {
        const n = node as ts.TypeReferenceNode;
        // `x as const` parses as a reference to a type named `const`.
        if (ts.isIdentifier(n.typeName) && n.typeName.text === "const" && !n.typeArguments) return;
        const id = leftmost(n.typeName);
        if (id) this.ref(id, "type");
        n.typeArguments?.forEach((a) => this.visit(a));
        return;
      }
      case ts.SyntaxKind.ExpressionWithTypeArguments:
        this.visitHeritageType(node as ts.ExpressionWithTypeArguments);
        return;
      case ts.SyntaxKind.TypeQuery: {
        const n = node as ts.TypeQueryNode;
        const id = leftmost(n.exprName);
        if (id) this.ref(id, "value");
        n.typeArguments?.forEach((a) => this.visit(a));
        return;
      }
      case ts.SyntaxKind.TypePredicate: {
        const n = node as ts.TypePredicateNode;
        if (n.type) this.visit(n.type);
        return;
      }
      case ts.SyntaxKind.NamedTupleMember:
        this.visit((node as ts.NamedTupleMember).type);
        return;
      case ts.SyntaxKind.ImportType: {
        const n = node as ts.ImportTypeNode;
        n.typeArguments?.forEach((a) => this.visit(a));
        return;
      }
      case ts.SyntaxKind.MappedType: {
        const n = node as ts.MappedTypeNode;
        const scope = new Scope(this.scope, false);
        scope.declare(n.typeParameter.name.text, false, true);
        this.withScope(scope, () => {
          this.visit(n.typeParameter);
          if (n.nameType) this.visit(n.nameType);
          if (n.type) this.visit(n.type);
          n.members?.forEach((m) => this.visit(m));
        });
        return;
      }
      case ts.SyntaxKind.ConditionalType: {
        const n = node as ts.ConditionalTypeNode;
        this.visit(n.checkType);
        // `infer U` binds U in the true branch only.
        const scope = new Scope(this.scope, false);
        const collectInfers = (t: ts.Node): void => {
          if (ts.isInferTypeNode(t)) scope.declare(t.typeParameter.name.text, false, true);
          ts.forEachChild(t, collectInfers);
        };
        collectInfers(n.extendsType);
        this.withScope(scope, () => {
          this.visit(n.extendsType);
          this.visit(n.trueType);
        });
        this.visit(n.falseType);
        return;
      }
      case ts.SyntaxKind.InferType: {
        const c = (node as ts.InferTypeNode).typeParameter.constraint;
        if (c) this.visit(c);
        return;
      }
      case ts.SyntaxKind.ImportDeclaration:
        return;
      case ts.SyntaxKind.ImportEqualsDeclaration: {
        const n = node as ts.ImportEqualsDeclaration;
        if (!ts.isExternalModuleReference(n.moduleReference)) {
          const id = leftmost(n.moduleReference);
          if (id) this.ref(id, "value");
        }
        return;
      }
      case ts.SyntaxKind.ExportDeclaration: {
        const n = node as ts.ExportDeclaration;
        if (!n.moduleSpecifier && n.exportClause && ts.isNamedExports(n.exportClause)) {
          for (const el of n.exportClause.elements) {
            const id = el.propertyName ?? el.name;
            if (!ts.isIdentifier(id)) continue;
            // `export { T }` names a type when no value of that name exists.
            const typeOnly = n.isTypeOnly || el.isTypeOnly || (!this.top.has(id.text, "value") && this.top.has(id.text, "type"));
            this.ref(id, typeOnly ? "type" : "value");
          }
        }
        return;
      }
      case ts.SyntaxKind.FunctionDeclaration:
      case ts.SyntaxKind.ClassDeclaration:
        // Handled in visit(); listed so the default below never sees a name.
        return;
      case ts.SyntaxKind.JsxElement:
      case ts.SyntaxKind.JsxSelfClosingElement:
      case ts.SyntaxKind.JsxFragment:
        // Cells are .ts, never .tsx.
        return;
    }
    ts.forEachChild(node, (child) => this.visit(child));
  }
}
