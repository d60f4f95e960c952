/** Values of every shape the chunked serializer cuts (chunked.test.ts; also built in a child process there). */
export function shapes(): Record<string, unknown> {
  const holey: unknown[] = [];
  holey[0] = 1;
  holey[6000] = "x";
  holey[6001] = { y: 2 };
  return {
    numbers: Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? i : i / 3)),
    oddNumbers: [-0, NaN, Infinity, -Infinity, 2 ** 53, 1e-300, ...Array.from({ length: 2000 }, (_, i) => i - 1000)],
    strings: Array.from({ length: 3000 }, (_, i) => (i % 2 ? `s${i}` : `ü✓${i}`)),
    matrix: Array.from({ length: 20 }, (_, i) => Array.from({ length: 1000 }, (_, j) => i + j / 3)),
    groups: new Map(
      Array.from({ length: 300 }, (_, i) => [`k${i}`, Array.from({ length: 20 }, (_, j) => ({ id: j, name: `n${j}`, tags: ["a", "b"], at: new Date(j) }))]),
    ),
    set: new Set(Array.from({ length: 3000 }, (_, i) => (i % 3 ? `s${i}` : i))),
    object: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [i % 5 ? `p${i}` : String(i), { a: i, f: new Float64Array(10).fill(i) }])),
    holey,
    nested: {
      a: Array.from({ length: 3000 }, (_, i) => i),
      m: new Map<unknown, unknown>([[{ k: 1 }, Array.from({ length: 3000 }, (_, i) => `v${i}`)]]),
      s: new Set([Array.from({ length: 3000 }, (_, i) => i * 1.5)]),
    },
    views: Array.from({ length: 40 }, (_, i) => ({ i, data: new Float64Array(20_000).fill(i), raw: new Uint8Array(100).fill(i) })),
    buffers: Array.from({ length: 10 }, (_, i) => ({ ab: new Uint8Array(new ArrayBuffer(70_000)).fill(i).buffer, label: "l".repeat(600) })),
    protoKey: Object.fromEntries([["__proto__", { evil: true }], ...Array.from({ length: 800 }, (_, i) => [`k${i}`, i] as const)]),
    // Sharing and cycles inside one item are the item's serializer's business.
    innerSharing: Array.from({ length: 400 }, (_, i) => {
      const o: Record<string, unknown> = { i, pad: "x".repeat(20) };
      o.self = o;
      return { a: o, b: o };
    }),
  };
}
