/**
 * How long SessionStorage.appendScreenshot blocks its caller, and how long
 * until the append is durable, per target directory (a mount, a plain
 * directory) in one run. A recording: one screenshot (~40 KB with its OCR
 * text) every `--interval-ms`, an audio segment with every third.
 *
 *     node dist/bench/append-bench.js [--appends 200] [--interval-ms 50] mount=/mnt plain=/tmp/plain
 *
 * Prints one JSON line per target: p50/p99/max in ms of
 *   returnMs   the call returning its promise (synchronous part),
 *   queuedMs   the promise resolving (the write is queued; what `await append()` costs),
 *   durableMs  from the call until `durable()` says the append is on disk (fsynced),
 * and the event loop's delay while recording (the queue's serialization runs on it).
 */

import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

import { nodeFsAdapter } from "../src/node-fs.js";
import { SessionStorage } from "../src/storage.js";

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1] ?? 0) };
}

const appends = option("--appends", 200);
const intervalMs = option("--interval-ms", 50);
const targets = process.argv.slice(2).filter((a) => a.includes("=")).map((a) => a.split("=", 2) as [string, string]);
const OCR = Array.from({ length: 600 }, (_, i) => `line ${i}: const value = compute(input, options); // ocr text`);

for (const [label, root] of targets) {
  const storage = new SessionStorage(root, nodeFsAdapter());
  const id = `append-bench-${Date.now()}`;
  await storage.saveMetadata({ id, name: "append benchmark", status: "active" });
  await storage.flush();
  const returned: number[] = [];
  const queued: number[] = [];
  const durable: Promise<number>[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  for (let n = 0; n < appends; n++) {
    const shot = {
      id: `s-${n}`,
      sessionId: id,
      timestamp: new Date(Date.UTC(2025, 0, 6) + n * 4000).toISOString(),
      sequenceNumber: n,
      attachmentId: `shot-${n}`,
      analysis: { summary: `screen ${n}`, extractedText: OCR, confidence: 0.9 },
    };
    if (n % 3 === 0) await storage.appendAudioSegment(id, { id: `a-${n / 3}`, sessionId: id, timestamp: shot.timestamp, duration: 12 });
    const t0 = performance.now();
    const call = storage.appendScreenshot(id, shot);
    returned.push(performance.now() - t0);
    await call;
    queued.push(performance.now() - t0);
    durable.push(storage.durable().then(() => performance.now() - t0));
    await sleep(intervalMs);
  }
  const durableMs = await Promise.all(durable);
  loop.disable();
  const stats = storage.stats();
  console.log(
    JSON.stringify({
      label,
      appends,
      intervalMs,
      returnMs: percentiles(returned),
      queuedMs: percentiles(queued),
      durableMs: percentiles(durableMs),
      eventLoopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      filesWritten: stats.queue.filesWritten,
      coalesced: stats.queue.coalesced,
      mbWritten: Math.round(stats.queue.bytesWritten / 1e5) / 10,
    }),
  );
}
