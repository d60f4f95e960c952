/**
 * Maps line numbers of the JavaScript that tslab's converter emits back to the
 * lines of the TypeScript cell. The converter has no source maps (its output
 * is re-transpiled), but the emitter keeps statements in order and keeps their
 * identifiers, so a monotone alignment of lines by shared tokens is reliable.
 */

const TOKEN = /[A-Za-z_$][\w$]*|\d[\d_.]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;
// Tokens the emitter adds or removes; they carry no evidence about origin.
const NOISE = new Set(["exports", "void", "require", "__importStar", "__importDefault", "default"]);

function tokens(line: string): string[] {
  return (line.match(TOKEN) ?? []).filter((t) => !NOISE.has(t));
}

function similarity(js: string[], ts: string[]): number {
  if (js.length === 0 || ts.length === 0) return 0;
  const pool = new Map<string, number>();
  for (const t of ts) pool.set(t, (pool.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of js) {
    const n = pool.get(t) ?? 0;
    if (n > 0) {
      common++;
      pool.set(t, n - 1);
    }
  }
  // Penalise TS lines much longer than the JS one so `x` doesn't match a long line.
  return common / Math.max(js.length, ts.length * 0.5);
}

export class LineMap {
  private readonly map: number[];

  /** `jsLines`/`tsLines` are the emitted code and the cell body; result lines are 0-based. */
  constructor(js: string, ts: string) {
    const jsLines = js.split("\n").map(tokens);
    const tsLines = ts.split("\n").map(tokens);
    const n = jsLines.length;
    const m = tsLines.length;
    // score[i][j]: best alignment of first i JS lines with first j TS lines.
    const score: Float64Array[] = [];
    for (let i = 0; i <= n; i++) score.push(new Float64Array(m + 1));
    for (let i = 1; i <= n; i++) {
      for (let j = 1; j <= m; j++) {
        const s = similarity(jsLines[i - 1], tsLines[j - 1]);
        score[i][j] = Math.max(score[i - 1][j], score[i][j - 1], s > 0.34 ? score[i - 1][j - 1] + s : -1);
      }
    }
    const matched = new Array<number>(n).fill(-1);
    let i = n;
    let j = m;
    while (i > 0 && j > 0) {
      const s = similarity(jsLines[i - 1], tsLines[j - 1]);
      if (s > 0.34 && score[i][j] === score[i - 1][j - 1] + s) {
        matched[i - 1] = j - 1;
        i--;
        j--;
      } else if (score[i][j] === score[i - 1][j]) i--;
      else j--;
    }
    // Unmatched JS lines (emitter additions) belong to the nearest statement above.
    let last = 0;
    this.map = matched.map((t) => (t >= 0 ? (last = t) : last));
  }

  /** 0-based TS line for a 0-based JS line. */
  tsLine(jsLine: number): number {
    if (jsLine < 0) return 0;
    return this.map[Math.min(jsLine, this.map.length - 1)] ?? 0;
  }
}
