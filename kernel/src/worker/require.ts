/**
 * `require` as step code sees it: modules resolve from the notebook's folder,
 * and `nbscale` / `tslab` are this package's client library (as in the kernel).
 */
import Module from "node:module";
import * as path from "node:path";
import { display, newDisplay } from "../client/display";

export function stepRequire(cwd: string): NodeJS.Require {
  const base = Module.createRequire(path.join(cwd, "__notebook__.js"));
  const builtins: Record<string, () => unknown> = {
    nbscale: () => require("../client/index"),
    tslab: () => ({
      display,
      newDisplay,
      versions: {
        tslab: "1.0.22",
        // Read lazily: loading the compiler itself would cost a worker ~0.3 s at start.
        // eslint-disable-next-line @typescript-eslint/no-var-requires
        typescript: (require("typescript/package.json") as { version: string }).version,
        node: process.version,
      },
    }),
  };
  return new Proxy(base, {
    apply(target, thisArg, args: unknown[]) {
      const id = args[0];
      if (typeof id === "string" && Object.prototype.hasOwnProperty.call(builtins, id)) return builtins[id]();
      return Reflect.apply(target, thisArg, args);
    },
  });
}
