/**
 * The one TypeScript compiler the kernel ships (the 6.0 line: the last with
 * the JavaScript compiler API, which the checker, completion and emit use),
 * so analysis parses cells exactly as the session compiles them.
 */
import * as ts from "typescript";

export { ts };
