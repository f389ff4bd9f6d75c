/**
 * Time SessionReader.listAllMetadata() over one or more session trees.
 *
 *   node dist/bench/list-bench.js [--runs N] [--concurrency C] LABEL=MOUNTPATH ...
 *
 * For each target: the first call (cold for a fresh mount), then N more
 * (warm); prints one JSON line per target. contrib/tauri/bench/bench.py
 * builds the corpus, mounts it, copies it to a plain directory and runs this.
 */

import { nodeFsAdapter } from "../src/node-fs.js";
import { SessionReader } from "../src/reader.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const runs = arg("--runs", 10);
const concurrency = arg("--concurrency", 16);
const targets = process.argv.slice(2).filter((a) => a.includes("="));

const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round = (x: number): number => Math.round(x * 100) / 100;

for (const target of targets) {
  const [label, path] = [target.slice(0, target.indexOf("=")), target.slice(target.indexOf("=") + 1)];
  const reader = new SessionReader(path, nodeFsAdapter(), { concurrency });
  let t = performance.now();
  const first = await reader.listAllMetadata();
  const firstMs = performance.now() - t;
  const times: number[] = [];
  let count = first.length;
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    count = (await reader.listAllMetadata()).length;
    times.push(performance.now() - t);
  }
  console.log(
    JSON.stringify({
      label,
      path,
      sessions: count,
      concurrency,
      firstMs: round(firstMs),
      medianMs: round(percentile(times, 50)),
      minMs: round(Math.min(...times)),
      p90Ms: round(percentile(times, 90)),
      runs,
    }),
  );
}
