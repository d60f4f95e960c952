/**
 * Reads the line part of a source map: for each generated line, the source
 * line of its first mapped segment. Errors in a cell name the TypeScript
 * line, so the emitter's own map is exact where a token heuristic would guess.
 */

const B64 = new Map([..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"].map((c, i) => [c, i]));

function decodeSegment(seg: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of seg) {
    const d = B64.get(ch);
    if (d === undefined) return out;
    value += (d & 31) << shift;
    if (d & 32) {
      shift += 5;
      continue;
    }
    out.push(value & 1 ? -(value >>> 1) : value >>> 1);
    value = 0;
    shift = 0;
  }
  return out;
}

/** 0-based source line per 0-based generated line; -1 where a line maps nowhere. */
export function generatedToSourceLines(mappings: string): number[] {
  const lines: number[] = [];
  let srcLine = 0;
  for (const line of mappings.split(";")) {
    let first = -1;
    if (line.length > 0) {
      for (const seg of line.split(",")) {
        const f = decodeSegment(seg);
        if (f.length >= 4) {
          srcLine += f[2];
          if (first < 0) first = srcLine;
        }
      }
    }
    lines.push(first);
  }
  // Lines the emitter added (helpers, wrappers) belong to the nearest mapped line below, else above.
  let next = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i] >= 0) next = lines[i];
    else lines[i] = next;
  }
  let prev = 0;
  return lines.map((l) => (l >= 0 ? (prev = l) : prev));
}
