/**
 * The notebook's variables as real bindings: top-level `let`s of classic
 * scripts run in this realm share one script scope, so a name a cell declares
 * is a binding that later cells (and functions of earlier cells) read and
 * write directly — no property look-ups, `{ n }` works, V8 optimises loops
 * over them. V8 refuses a second `let` of the same name, so each name is
 * declared once (here) and every later declaration of it becomes an
 * assignment (cell-script.ts).
 */
import * as vm from "node:vm";

type Getter = () => unknown;
type Setter = (v: unknown) => void;

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** One realm, one script scope: every executor in the process shares these. */
const declaredInRealm = new Set<string>();
const gettersInRealm = new Map<string, Getter>();
const settersInRealm = new Map<string, Setter>();

export class ScriptBindings {
  private readonly declared = declaredInRealm;
  private readonly getters = gettersInRealm;
  private readonly setters = settersInRealm;
  /** Names a cell declared since the last reset (the notebook's variables). */
  private readonly session = new Set<string>();

  /** Declares what is new among `names`; the rest already exist and keep their value. */
  declare(names: Iterable<string>): void {
    const fresh = [...new Set(names)].filter((n) => IDENT.test(n) && !this.declared.has(n));
    if (fresh.length > 0) {
      // One script per batch: a name V8 refuses (e.g. `undefined`) fails the whole batch, so retry singly.
      try {
        vm.runInThisContext(`let ${fresh.join(", ")};`, { filename: "nbscale-bindings.js" });
        for (const n of fresh) this.declared.add(n);
      } catch {
        for (const n of fresh) {
          try {
            vm.runInThisContext(`let ${n};`, { filename: "nbscale-bindings.js" });
            this.declared.add(n);
          } catch {
            // a name the realm reserves; cells declaring it fail with the engine's own error
          }
        }
      }
    }
    for (const n of names) if (this.declared.has(n)) this.session.add(n);
  }

  isDeclared(name: string): boolean {
    return this.declared.has(name);
  }

  /** Whether a cell (or bind) declared `name` in this session. */
  has(name: string): boolean {
    return this.session.has(name);
  }

  names(): string[] {
    return [...this.session];
  }

  get(name: string): unknown {
    if (!this.declared.has(name)) return undefined;
    let g = this.getters.get(name);
    if (!g) {
      g = vm.runInThisContext(`(() => ${name})`, { filename: "nbscale-bindings.js" }) as Getter;
      this.getters.set(name, g);
    }
    return g();
  }

  set(name: string, value: unknown): void {
    this.declare([name]);
    if (!this.declared.has(name)) throw new Error(`nbscale: '${name}' cannot be a notebook variable`);
    let s = this.setters.get(name);
    if (!s) {
      // The parameter's name differs from the binding's, so it never shadows it (a variable named `v`).
      const param = `${name}$`;
      s = vm.runInThisContext(`((${param}) => { ${name} = ${param}; })`, { filename: "nbscale-bindings.js" }) as Setter;
      this.setters.set(name, s);
    }
    s(value);
  }

  /** Forgets the session's variables (restart-like reset): their bindings stay, set to undefined. */
  reset(): void {
    for (const n of this.session) this.set(n, undefined);
    this.session.clear();
  }
}
