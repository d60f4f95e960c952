/**
 * The one TypeScript compiler the kernel ships: the fork tslab itself uses,
 * so analysis parses cells exactly as the session compiles them.
 */
import * as ts from "@tslab/typescript-for-tslab";

export { ts };
