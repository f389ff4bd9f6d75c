/**
 * A recording to be killed (bench/kill_runs.py): appends screenshots, and an
 * audio segment with every third, through SessionStorage in bursts of 1-5,
 * flushes after each burst and then prints "flushed <screenshots> <audio>".
 * Started again on the same session, it first recovers what a killed run left
 * (recoverSession) and goes on from the recovered counts.
 *
 *     node dist/bench/kill-recorder.js ROOT SESSION_ID [--recover-only]
 */

import { nodeFsAdapter } from "../src/node-fs.js";
import { SessionStorage } from "../src/storage.js";

const [root, id, flag] = process.argv.slice(2);
if (root === undefined || id === undefined) {
  process.stderr.write("usage: kill-recorder.js ROOT SESSION_ID [--recover-only]\n");
  process.exit(2);
}
const sessionId: string = id;

const OCR = Array.from({ length: 120 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog`);
const start = Date.UTC(2025, 0, 6, 9, 0, 0);

function screenshot(n: number) {
  return {
    id: `s-${n}`,
    sessionId,
    timestamp: new Date(start + n * 4000).toISOString(),
    sequenceNumber: n,
    attachmentId: `shot-${n}`,
    analysis: { summary: `screen ${n}`, detectedActivity: "coding", extractedText: OCR, confidence: 0.9 },
  };
}

function audioSegment(m: number) {
  return { id: `a-${m}`, sessionId, timestamp: new Date(start + m * 12000).toISOString(), duration: 12, transcription: `segment ${m}` };
}

const storage = new SessionStorage(root, nodeFsAdapter());
if ((await storage.loadMetadata(sessionId)) === null) {
  await storage.saveMetadata({ id: sessionId, name: "a recording killed again and again", status: "active" });
} else {
  const gained = await storage.recoverSession(sessionId);
  process.stdout.write(`recovered ${gained.screenshots} ${gained.audioSegments}\n`);
}
await storage.flush();
const meta = (await storage.loadMetadata(sessionId))!;
let shots = meta.chunks.screenshots.count;
let segments = meta.chunks.audioSegments.count;
process.stdout.write(`flushed ${shots} ${segments}\n`);
if (flag !== "--recover-only") {
  for (;;) {
    const burst = 1 + Math.floor(Math.random() * 5);
    for (let i = 0; i < burst; i++) {
      if (shots % 3 === 0) await storage.appendAudioSegment(sessionId, audioSegment(segments++));
      await storage.appendScreenshot(sessionId, screenshot(shots++));
    }
    await storage.flush();
    process.stdout.write(`flushed ${shots} ${segments}\n`);
  }
}
