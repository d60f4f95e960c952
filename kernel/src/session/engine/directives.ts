/**
 * tslab's cell directives, read from the comments a cell starts with:
 * `/** @module name *\/` (or `//@module name`) makes the cell a module that
 * later cells import as `./name`; `@jsx` checks and compiles it as TSX.
 */
export interface CellDirectives {
  module?: string;
  jsx: boolean;
}

const MODULE_NAME = /^[A-Za-z_$][\w$.-]*$/;

export function cellDirectives(src: string): CellDirectives {
  const out: CellDirectives = { jsx: false };
  let rest = src;
  for (;;) {
    rest = rest.replace(/^\s+/, "");
    let comment: string | null = null;
    const line = /^\/\/([^\n]*)/.exec(rest);
    const block = /^\/\*([\s\S]*?)\*\//.exec(rest);
    if (line) comment = line[1];
    else if (block) comment = block[1];
    else break;
    rest = rest.slice((line ?? block)![0].length);
    for (const m of comment.matchAll(/@(module|jsx)\b[ \t]*([^\s*]*)/g)) {
      if (m[1] === "jsx") out.jsx = true;
      else if (MODULE_NAME.test(m[2])) out.module = m[2];
    }
  }
  return out;
}
