/**
 * The kernel's record of inputs for `history_request` (tail, range, search),
 * as IPython's history manager answers it. One session per kernel process.
 */
export interface HistoryEntry {
  line: number;
  input: string;
  output: string | null;
}

export type HistoryTuple = [number, number, string] | [number, number, [string, string | null]];

export class InputHistory {
  readonly session = 1;
  private readonly entries: HistoryEntry[] = [];

  add(line: number, input: string): HistoryEntry {
    const e = { line, input, output: null };
    this.entries.push(e);
    return e;
  }

  private tuple(e: HistoryEntry, output: boolean): HistoryTuple {
    return output ? [this.session, e.line, [e.input, e.output]] : [this.session, e.line, e.input];
  }

  tail(n: number, output: boolean): HistoryTuple[] {
    return this.entries.slice(Math.max(0, this.entries.length - n)).map((e) => this.tuple(e, output));
  }

  range(session: number, start: number, stop: number, output: boolean): HistoryTuple[] {
    // session 0 or negative offsets mean "this session" in IPython's numbering.
    if (session > 0 && session !== this.session) return [];
    return this.entries.filter((e) => e.line >= start && e.line < stop).map((e) => this.tuple(e, output));
  }

  search(pattern: string, n: number | undefined, unique: boolean, output: boolean): HistoryTuple[] {
    const re = globToRegExp(pattern || "*");
    let hits = this.entries.filter((e) => re.test(e.input));
    if (unique) {
      const seen = new Set<string>();
      hits = hits
        .reverse()
        .filter((e) => (seen.has(e.input) ? false : (seen.add(e.input), true)))
        .reverse();
    }
    if (n !== undefined && n > 0) hits = hits.slice(-n);
    return hits.map((e) => this.tuple(e, output));
  }
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, "[\\s\\S]*")
    .replace(/\?/g, "[\\s\\S]");
  return new RegExp(`^${body}$`);
}
