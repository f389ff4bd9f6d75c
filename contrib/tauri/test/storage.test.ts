/**
 * SessionStorage against a real sessionfs mount. Driven by tests/test_clients.py,
 * which mounts an empty store and writes a plan of operations, then checks what
 * these tests wrote against the Python SessionStore:
 *   SESSIONFS_RW_MNT  the mountpoint (writable; nothing else writes there)
 *   SESSIONFS_PLAN    the plan (see storage_plan in the pytest file)
 * Run by hand:  SESSIONFS_RW_MNT=... SESSIONFS_PLAN=... node --test dist/test/storage.test.js
 */

import assert from "node:assert/strict";
import { mkdir, readFile, readdir, rm, stat } from "node:fs/promises";
import { describe, test } from "node:test";

import { BadInputError, ConflictError, NotFoundError, PersistenceError } from "../src/errors.js";
import { nodeFsAdapter } from "../src/node-fs.js";
import { SessionReader } from "../src/reader.js";
import { SessionStorage } from "../src/storage.js";
import type { AudioSegment, ScreenshotRecord, SessionMetadata } from "../src/types.js";

interface PlanOp {
  op: string;
  args: unknown[];
  error: string | null;
}

interface Plan {
  now: string;
  ops: PlanOp[];
  recording: { meta: SessionMetadata; screenshots: ScreenshotRecord[]; audioSegments: AudioSegment[]; flushEvery: number };
  conflict: { meta: SessionMetadata };
}

const MNT = process.env.SESSIONFS_RW_MNT;
const PLAN = process.env.SESSIONFS_PLAN;
const skip = !MNT || !PLAN ? "SESSIONFS_RW_MNT and SESSIONFS_PLAN are not set (run via tests/test_clients.py)" : false;
const plan: Plan = skip ? ({} as Plan) : JSON.parse(await readFile(PLAN!, "utf8"));
const root = MNT ?? "/nonexistent";
const ERRORS: Record<string, new (...args: never[]) => Error> = { BadInputError, ConflictError, NotFoundError };

/** Every file under `dir`: relative path -> bytes (as text). */
async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(`${dir}/${rel}`);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if ((await stat(`${dir}/${path}`)).isDirectory()) await walk(path);
      else out.set(path, await readFile(`${dir}/${path}`, "utf8"));
    }
  };
  await walk("");
  return out;
}

describe("SessionStorage on a sessionfs mount", { skip, timeout: 300_000 }, () => {
  test("the plan's operations through SessionStorage (same errors as the Python API)", async () => {
    const storage = new SessionStorage(root, nodeFsAdapter(), { now: () => new Date(plan.now) });
    const call = storage as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    for (const [i, { op, args, error }] of plan.ops.entries()) {
      const what = `op ${i} ${op}`;
      if (error === null) await call[op]!.apply(storage, args);
      else await assert.rejects(() => call[op]!.apply(storage, args), ERRORS[error]!, what);
    }
    await storage.flush();
    assert.equal(storage.stats().queue.failures, 0);
  });

  test("a 2-hour session recorded by appends reads back equal through SessionReader", async () => {
    const { meta, screenshots, audioSegments, flushEvery } = plan.recording;
    const storage = new SessionStorage(root, nodeFsAdapter());
    await storage.saveMetadata(meta);
    for (const [step, shot] of screenshots.entries()) {
      await storage.appendScreenshot(meta.id, shot);
      if (step % 3 === 0) await storage.appendAudioSegment(meta.id, audioSegments[step / 3]!);
      if (step % flushEvery === flushEvery - 1) await storage.flush();
    }
    await storage.flush();
    assert.deepEqual(await storage.loadAll("screenshots", meta.id), screenshots);
    const reader = new SessionReader(root, nodeFsAdapter());
    assert.deepEqual(await reader.loadAll("screenshots", meta.id), screenshots);
    assert.deepEqual(await reader.loadAll("audioSegments", meta.id), audioSegments);
    const full = await reader.loadFullSession(meta.id);
    assert.equal(full?.screenshots?.length, screenshots.length);
    assert.deepEqual((await reader.loadMetadata(meta.id))?.chunks.screenshots, {
      count: screenshots.length,
      chunkCount: Math.ceil(screenshots.length / 20),
      chunkSize: 20,
    });
  });

  test("a version conflict between two writers is detected", async () => {
    const a = new SessionStorage(root, nodeFsAdapter());
    const b = new SessionStorage(root, nodeFsAdapter());
    const first = await a.saveMetadata(plan.conflict.meta);
    await a.flush();
    const seenByA = await a.loadMetadata(first.id);
    const seenByB = await b.loadMetadata(first.id);
    assert.equal(seenByA?.version, seenByB?.version);
    await a.saveMetadata({ ...seenByA!, name: "renamed by A" });
    await a.flush();
    const error = await b.saveMetadata({ ...seenByB!, name: "renamed by B" }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConflictError, String(error));
    assert.equal(error.storedVersion, seenByB!.version! + 1);
    assert.equal(error.callerVersion, seenByB!.version);
    await b.flush();
    assert.equal((await new SessionReader(root, nodeFsAdapter()).loadMetadata(first.id))?.name, "renamed by A");
  });

  test("bad input: typed errors naming the thing, nothing written", async () => {
    const storage = new SessionStorage(root, nodeFsAdapter());
    const id = "bad-input";
    await storage.saveMetadata({ id, name: "bad input", video: { path: "v.mp4" } });
    await storage.appendScreenshot(id, { id: "s0", sessionId: id, timestamp: "2025-01-01T00:00:00.000Z" });
    await storage.flush();
    const before = await tree(`${root}/sessions/${id}`);
    const queuedBefore = storage.stats().queue.filesWritten;
    const shot = { sessionId: id, timestamp: "2025-01-01T00:00:01.000Z" } as unknown as ScreenshotRecord;
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ["a record without an id", () => storage.appendScreenshot(id, shot), /id: expected a non-empty str/],
      ["a session id with /", () => storage.appendScreenshot("a/b", { ...shot, id: "x" }), /must not contain '\/'/],
      ["a session id ..", () => storage.saveMetadata({ id: ".." }), /must not start with '\.'/],
      ["an attachment id that is not a file name", () => storage.appendScreenshot(id, { ...shot, id: "x", attachmentId: "../etc/passwd" }), /attachmentId.*must not/],
      ["a lone surrogate", () => storage.saveSummary(id, { text: "\ud800" }), /surrogates not allowed/],
      ["a list with one bad record", () => storage.saveScreenshots(id, [{ ...shot, id: "a" }, 7 as unknown as ScreenshotRecord]), /screenshots\[1\]: expected a dict/],
      ["inline arrays in metadata", () => storage.saveMetadata({ id, screenshots: [] } as unknown as SessionMetadata), /must be saved with its own call/],
      ["a legacy document with a bad record", () => storage.saveFullSession({ id, screenshots: [{ id: "a" }, null] } as never), /screenshots\[1\]: expected a dict/],
      ["an unknown large object", () => storage.saveLargeObject(id, "notes", {}), /unknown field/],
    ];
    for (const [what, run, message] of cases) {
      await assert.rejects(run, (e: unknown) => e instanceof BadInputError && message.test((e as Error).message), what);
    }
    await assert.rejects(() => storage.appendScreenshot("no-such-session", { ...shot, id: "x" }), NotFoundError);
    await assert.rejects(() => storage.saveVideoChunks("no-such-session", []), NotFoundError);
    await storage.flush();
    assert.equal(storage.stats().queue.filesWritten, queuedBefore);
    assert.deepEqual(await tree(`${root}/sessions/${id}`), before);
    assert.equal(await nodeFsAdapter().exists(`${root}/sessions/a`), false);
  });

  test("appends to one chunk coalesce: ten appends queued before a write become one write", async () => {
    const storage = new SessionStorage(root, nodeFsAdapter());
    const id = "coalesce";
    await storage.saveMetadata({ id });
    await storage.flush();
    const before = storage.stats().queue;
    for (let i = 0; i < 10; i++) await storage.appendScreenshot(id, { id: `s${i}`, sessionId: id, timestamp: "t" });
    await storage.flush();
    const after = storage.stats().queue;
    assert.equal(after.filesWritten - before.filesWritten, 2, "one chunk file and one metadata.json");
    assert.equal(after.coalesced - before.coalesced, 18);
    assert.equal((await new SessionReader(root, nodeFsAdapter()).loadAll("screenshots", id)).length, 10);
    assert.deepEqual(await readdir(`${root}/sessions/${id}/screenshots`), ["chunk-001.json"], "no temporary file left");
  });

  test("back-pressure: above maxQueueBytes a call waits until the queued writes are on disk", async () => {
    const storage = new SessionStorage(root, nodeFsAdapter(), { maxQueueBytes: 1 });
    const id = "back-pressure";
    await storage.saveMetadata({ id });
    await storage.flush();
    const before = storage.stats().queue.filesWritten;
    await storage.appendScreenshot(id, { id: "s0", sessionId: id, timestamp: "t" });
    assert.equal(storage.stats().queue.filesWritten, before, "the first call only queues");
    await storage.appendScreenshot(id, { id: "s1", sessionId: id, timestamp: "t" });
    assert.equal(storage.stats().queue.filesWritten, before + 2, "the second waited for the first's chunk and metadata");
    await storage.flush();
    assert.equal(storage.stats().queue.coalesced, 0);
  });

  test("watch events drop the cached chunks another writer replaced", async () => {
    const mine = new SessionStorage(root, nodeFsAdapter());
    const other = new SessionStorage(root, nodeFsAdapter());
    const id = "watched";
    const shot = (n: number, by: string) => ({ id: `s${n}`, sessionId: id, timestamp: "t", by });
    await mine.saveMetadata({ id });
    await mine.saveScreenshots(id, [shot(0, "mine")]);
    await mine.flush();
    assert.equal((await mine.loadChunk("screenshots", id, 0))[0]?.by, "mine");
    let seen!: () => void;
    const event = new Promise<void>((resolve) => (seen = resolve));
    const stop = mine.watch(id, () => seen(), { intervalMs: 20 });
    await stop.ready;
    await other.saveScreenshots(id, Array.from({ length: 25 }, (_, n) => shot(n, "other")));
    await other.flush();
    await event;
    stop();
    assert.equal((await mine.loadChunk("screenshots", id, 0))[0]?.by, "other");
    assert.equal((await mine.loadAll("screenshots", id)).length, 25);
  });

  test("a failed write surfaces through onError, stats and flush, stays queued and succeeds on retry", async () => {
    const errors: PersistenceError[] = [];
    const storage = new SessionStorage(root, nodeFsAdapter(), { retryDelayMs: 50, onError: (e) => errors.push(e) });
    const id = "failing";
    await storage.saveMetadata({ id });
    await storage.flush();
    await mkdir(`${root}/sessions/${id}/summary.json/blocker`, { recursive: true });
    await storage.saveSummary(id, { text: "kept" });
    await assert.rejects(() => storage.flush(), PersistenceError);
    assert.ok(errors.length >= 1 && errors[0]!.paths.some((p) => p.endsWith("/summary.json")), String(errors[0]));
    assert.ok(storage.stats().queue.failures >= 1);
    assert.match(storage.stats().queue.lastError ?? "", /summary\.json|directory|EISDIR|ENOTEMPTY/);
    assert.deepEqual(await storage.loadLargeObject(id, "summary"), { text: "kept" }, "still visible, still queued");
    await rm(`${root}/sessions/${id}/summary.json`, { recursive: true });
    await storage.flush();
    const reader = new SessionReader(root, nodeFsAdapter());
    assert.deepEqual(await reader.loadSummary(id), { text: "kept" });
    assert.equal((await reader.loadMetadata(id))?.hasSummary, true);
  });

  test("the LRU of parsed chunks stays within its byte bound; hits, misses, evictions", async () => {
    const id = plan.recording.meta.id;
    const storage = new SessionStorage(root, nodeFsAdapter(), { cacheBytes: 3_000_000 });
    const chunks = Math.ceil(plan.recording.screenshots.length / 20);
    for (let i = 0; i < chunks; i++) await storage.loadChunk("screenshots", id, i);
    for (let i = 0; i < chunks; i++) await storage.loadChunk("screenshots", id, i);
    const stats = storage.getCacheStats();
    assert.ok(stats.bytes <= 3_000_000 && stats.bytes > 0, JSON.stringify(stats));
    assert.ok(stats.evictions > 0, JSON.stringify(stats));
    assert.equal(stats.hits + stats.misses, 2 * chunks);
    const last = await storage.loadChunk("screenshots", id, chunks - 1);
    assert.equal(storage.getCacheStats().hits, stats.hits + 1);
    assert.deepEqual(last, plan.recording.screenshots.slice((chunks - 1) * 20));
    storage.clearSessionCache(id);
    assert.equal(storage.getCacheStats().bytes, 0);
  });
});
