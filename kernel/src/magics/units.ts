const SIZE_UNITS: Record<string, number> = {
  "": 1,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40,
};

/**
 * `512M`, `8G`, `64GiB`, `1.5G`, `2048MiB`, `100K`, `1T` → bytes. Units are
 * binary whatever the spelling (`8GB` is 8 GiB): that is what a memory
 * request means to Node, Slurm and Batch alike. A bare number is refused
 * because nobody can tell whether it meant bytes or megabytes.
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([KMGT])(?:i?B)?$/i.exec(text.trim()) ?? /^(\d+)\s*B$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? "").toUpperCase();
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[unit]);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/** The shortest exact spelling: 8 GiB → `8G`, 1.5 GiB → `1536M`. */
export function formatSize(bytes: number): string {
  for (const unit of ["T", "G", "M", "K"]) {
    const scale = SIZE_UNITS[unit];
    if (bytes >= scale && bytes % scale === 0) return `${bytes / scale}${unit}`;
  }
  return `${bytes}B`;
}

const DURATION_UNITS: Array<[string, number]> = [
  ["d", 86_400_000],
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
  ["ms", 1],
];

/** `90s`, `10m`, `2h`, `1h30m`, `1.5h`, `500ms`, `1d` → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/gy;
  const s = text.trim().toLowerCase();
  if (s === "") return undefined;
  let total = 0;
  let lastRank = -1;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const rank = DURATION_UNITS.findIndex(([u]) => u === m![2]);
    // "30m1h" is more likely a mistake than a wish; insist on largest-first.
    if (rank <= lastRank) return undefined;
    lastRank = rank;
    total += Number(m[1]) * DURATION_UNITS[rank][1];
    consumed = re.lastIndex;
  }
  if (consumed !== s.length) return undefined;
  const ms = Math.round(total);
  return ms > 0 ? ms : undefined;
}

/** `5400000` → `1h30m`; milliseconds only when there is a remainder. */
export function formatDuration(ms: number): string {
  let rest = ms;
  let out = "";
  for (const [unit, scale] of DURATION_UNITS) {
    if (unit === "d") continue; // hours read better than days for timeouts
    const n = Math.floor(rest / scale);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * scale;
    }
  }
  return out === "" ? "0s" : out;
}

/** `97.3 MB`, `12.0 kB` (decimal, as people read log sizes). */
export function formatMB(bytes: number): string {
  return bytes >= 1e5 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`;
}
