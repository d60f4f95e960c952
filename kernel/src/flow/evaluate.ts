/**
 * Evaluates a compiled flow module. Kept apart from load.ts so a worker
 * process never loads the TypeScript compiler (it only runs the JavaScript
 * the runner compiled once).
 */
import Module from "node:module";
import { dirname } from "node:path";
import { Flow, isFlow } from "./api";

export class FlowLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlowLoadError";
  }
}

/**
 * Runs the compiled module and returns its flow. `nbscale` (and
 * `nbscale/flow`) resolve to this installation, whether or not the flow's
 * folder has it in node_modules.
 */
export function evaluateFlow(path: string, js: string): Flow {
  const m = new Module(path, undefined);
  m.filename = path;
  m.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(dirname(path));
  const plain = m.require.bind(m);
  m.require = Object.assign((id: string): unknown => (id === "nbscale" || id === "nbscale/flow" ? require("../client/index") : plain(id)), {
    resolve: require.resolve,
    cache: require.cache,
    main: require.main,
    extensions: require.extensions,
  }) as NodeJS.Require;
  (m as unknown as { _compile(code: string, filename: string): void })._compile(js, path);
  const exported = m.exports as { default?: unknown };
  const candidate = isFlow(exported.default) ? exported.default : Object.values(exported).find(isFlow);
  if (!candidate) {
    throw new FlowLoadError(`${path} does not export a flow: end it with \`export default flow("name", [step1, step2, ...])\``);
  }
  return candidate;
}
