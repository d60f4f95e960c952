/**
 * BLAKE3 from the native `@napi-rs/blake-hash` addon (prebuilt for each
 * platform and installed by npm as an optional dependency; nothing is built or
 * downloaded at install time). One core hashes ~5 GB/s with it here, against
 * ~1.2–1.6 GB/s for SHA-256 — the difference between a restore that is
 * bounded by hashing and one bounded by reading (docs/benchmarks.md).
 *
 * Optional at run time: where the addon can't load (an unsupported platform),
 * `blake3()` is null and chunk manifests fall back to SHA-256.
 */
interface Blake3Hasher {
  update(input: Uint8Array): unknown;
  digest(format: "hex"): string;
}

interface Blake3Native {
  blake3(input: Uint8Array): Buffer;
  Blake3Hasher: new () => Blake3Hasher;
}

export interface Blake3 {
  /** Hex digest of `bytes` (any view; its offset and length are respected). */
  hex(bytes: Uint8Array): string;
  /** An incremental hasher. */
  create(): Blake3Hasher;
}

let loaded: Blake3 | null | undefined;

export function blake3(): Blake3 | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.NBSCALE_NO_BLAKE3 === "1") return loaded; // tests of the SHA-256 fallback
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const native = require("@napi-rs/blake-hash") as Blake3Native;
    const probe = native.blake3(new Uint8Array(0)).toString("hex");
    // The empty-input test vector of the BLAKE3 specification: a broken build is not used.
    if (probe === "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262") {
      loaded = { hex: (b) => native.blake3(b).toString("hex"), create: () => new native.Blake3Hasher() };
    }
  } catch {
    // no addon for this platform: SHA-256 it is
  }
  return loaded;
}
