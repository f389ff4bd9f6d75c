/**
 * SessionReader against a real sessionfs mount, compared with what the Python
 * session API (store.sessions.SessionStore) returns for the same store.
 *
 * Driven by tests/test_clients.py, which mounts a generated corpus and sets
 *   SESSIONFS_MNT       the mountpoint
 *   SESSIONFS_EXPECTED  a JSON file with the Python API's values (see the pytest file)
 * Run by hand:  SESSIONFS_MNT=... SESSIONFS_EXPECTED=... node --test dist/test/
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { describe, test } from "node:test";

import { nodeFsAdapter } from "../src/node-fs.js";
import { SessionReader, SessionFsError, type ListFilter } from "../src/reader.js";
import { splitSession } from "../src/split.js";
import type { ArrayKindName, ChunkFileEvent, SessionMetadata } from "../src/types.js";

interface ExpectedSession {
  metadata: SessionMetadata;
  chunks: Record<ArrayKindName, unknown[][]>;
  all: Record<ArrayKindName, unknown[]>;
  full: Record<string, unknown>;
  summary: unknown;
  transcription: unknown;
  attachments: string[];
}

interface Expected {
  list: SessionMetadata[];
  filters: { filter: ListFilter; ids: string[] }[];
  sessions: Record<string, ExpectedSession>;
  search: { available: boolean; reason?: string; cases?: { query: string; ids: string[] }[]; mustInclude?: string[] };
}

const MNT = process.env.SESSIONFS_MNT;
const EXPECTED = process.env.SESSIONFS_EXPECTED;
const skip = !MNT || !EXPECTED ? "SESSIONFS_MNT and SESSIONFS_EXPECTED are not set (run via tests/test_clients.py)" : false;

const expected: Expected = skip ? ({} as Expected) : JSON.parse(await readFile(EXPECTED!, "utf8"));
const reader = new SessionReader(MNT ?? "/nonexistent", nodeFsAdapter());
const KINDS: ArrayKindName[] = ["screenshots", "audioSegments", "videoChunks"];

describe("SessionReader on a sessionfs mount", { skip, timeout: 30_000 }, () => {
  test("listAllMetadata returns what SessionStore.list_metadata returns, in its order", async () => {
    const list = await reader.listAllMetadata();
    assert.deepEqual(
      list.map((m) => m.id),
      expected.list.map((m) => m.id),
    );
    assert.deepEqual(list, expected.list);
  });

  test("listAllMetadata filters like list_metadata(status, start_after/before, tags, topic_ids, limit, offset)", async () => {
    for (const { filter, ids } of expected.filters) {
      const got = (await reader.listAllMetadata(filter)).map((m) => m.id);
      assert.deepEqual(got, ids, `filter ${JSON.stringify(filter)}`);
    }
  });

  test("loadMetadata equals load_metadata; a missing session gives null", async () => {
    for (const [id, want] of Object.entries(expected.sessions)) {
      assert.deepEqual(await reader.loadMetadata(id), want.metadata, id);
    }
    assert.equal(await reader.loadMetadata("no-such-session"), null);
    assert.equal(await reader.loadFullSession("no-such-session"), null);
  });

  test("progressive loading: chunk by chunk equals load_chunk, concatenated equals load_all", async () => {
    let chunksRead = 0;
    for (const [id, want] of Object.entries(expected.sessions)) {
      const meta = await reader.loadMetadata(id);
      assert.ok(meta);
      for (const kind of KINDS) {
        const wantChunks = want.chunks[kind];
        assert.equal(reader.chunkCount(meta, kind), wantChunks.length, `${id} ${kind} chunkCount`);
        for (let i = 0; i < wantChunks.length; i++) {
          const got =
            kind === "screenshots"
              ? await reader.loadScreenshotsChunk(id, i)
              : kind === "audioSegments"
                ? await reader.loadAudioSegmentsChunk(id, i)
                : await reader.loadVideoChunksChunk(id, i);
          assert.deepEqual(got, wantChunks[i], `${id} ${kind} chunk ${i}`);
          chunksRead++;
        }
        const parts: unknown[][] = [];
        for await (const part of reader.iterateChunks(kind, id, meta)) {
          assert.equal(part.index, parts.length);
          assert.equal(part.chunkCount, wantChunks.length);
          parts.push(part.records);
        }
        assert.deepEqual(parts, wantChunks, `${id} ${kind} iterateChunks`);
        assert.deepEqual(await reader.loadAll(kind, id), want.all[kind], `${id} ${kind} loadAll`);
      }
      assert.deepEqual(await reader.loadAllScreenshots(id), want.all.screenshots);
    }
    assert.ok(chunksRead > Object.keys(expected.sessions).length, "the corpus has several chunks per session");
    const [someId] = Object.keys(expected.sessions);
    await assert.rejects(reader.loadScreenshotsChunk(someId!, 999), SessionFsError);
  });

  test("loadFullSession equals load_full_session, top-level key order included", async () => {
    for (const [id, want] of Object.entries(expected.sessions)) {
      const full = await reader.loadFullSession(id);
      assert.ok(full, id);
      assert.deepEqual(Object.keys(full), Object.keys(want.full), `${id}: key order`);
      assert.deepEqual(full, want.full, id);
    }
  });

  test("splitSession of each merged document gives the files on the mount (split_session's values and key order)", async () => {
    for (const [id, want] of Object.entries(expected.sessions)) {
      const files = splitSession(want.full);
      for (const [rel, value] of files) {
        const onDisk = JSON.parse(await readFile(`${MNT}/sessions/${id}/${rel}`, "utf8"));
        assert.deepEqual(value, onDisk, `${id}/${rel}`);
        if (rel === "metadata.json") assert.deepEqual(Object.keys(value as object), Object.keys(onDisk), `${id}: key order`);
      }
      assert.deepEqual([...files.keys()].filter((rel) => rel.includes("/")).length,
        Object.values(want.chunks).reduce((n, chunks) => n + chunks.length, 0), `${id}: chunk files`);
    }
  });

  test("large objects and attachments", async () => {
    for (const [id, want] of Object.entries(expected.sessions)) {
      assert.deepEqual(await reader.loadSummary(id), want.summary, `${id} summary`);
      assert.deepEqual(await reader.loadTranscription(id), want.transcription, `${id} transcription`);
      assert.deepEqual(await reader.listAttachments(id), want.attachments, `${id} attachments`);
    }
  });

  test("search(query) lists search/<query>/", async (t) => {
    const s = expected.search;
    if (!s.available) {
      t.skip(s.reason ?? "no search view in this mount");
      return;
    }
    assert.ok(s.cases && s.cases.length > 0);
    for (const { query, ids: want } of s.cases) {
      const ids = await reader.search(query);
      assert.deepEqual(ids, want, `search ${JSON.stringify(query)}: same entries, same (ranked) order`);
      for (const id of s.mustInclude ?? []) assert.ok(ids.includes(id), `search ${JSON.stringify(query)} finds ${id}`);
      const metas = await reader.searchMetadata(query);
      assert.deepEqual(
        metas.map((m) => m.id),
        ids.filter((id) => id in expected.sessions),
      );
    }
    await assert.rejects(reader.search("a/b"), TypeError);
  });

  test("watch sees the chunk files another process creates through the mount", async (t) => {
    const id = `watch-${process.pid}-${Date.now()}`;
    const dir = `${MNT}/sessions/${id}`;
    await mkdir(`${dir}/screenshots`, { recursive: true });
    await writeFile(`${dir}/screenshots/chunk-001.json`, JSON.stringify({ sessionId: id, chunkIndex: 0, screenshots: [] }));
    const events: { event: ChunkFileEvent; at: number }[] = [];
    let wake: (() => void) | undefined;
    const stop = reader.watch(id, (event) => {
      events.push({ event, at: Date.now() });
      wake?.();
    });
    try {
      await stop.ready;
      // Another process writes two chunk files, as the recording app would.
      const writer = `
        const fs = require("node:fs");
        const [dir, id] = process.argv.slice(1);
        fs.mkdirSync(dir + "/audio-segments", { recursive: true });
        for (const [sub, key, i] of [["screenshots", "screenshots", 1], ["audio-segments", "segments", 0]]) {
          const name = dir + "/" + sub + "/chunk-" + String(i + 1).padStart(3, "0") + ".json";
          fs.writeFileSync(name, JSON.stringify({ sessionId: id, chunkIndex: i, [key]: [] }));
        }
        process.stdout.write(String(Date.now()));`;
      const child = spawn(process.execPath, ["-e", writer, dir, id], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const code: number = await new Promise((resolve) => child.on("close", resolve));
      assert.equal(code, 0, "the writer process failed");
      const written = Number(out);
      // A generous bound only against a hang: how fast events come is measured, not judged here.
      const deadline = written + 60_000;
      while (events.length < 2 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          // The bound's timer goes with the wait: one left pending keeps Node alive until it fires.
          const bound = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          wake = () => {
            clearTimeout(bound);
            resolve();
          };
        });
      }
      const seen = events.map((e) => `${e.event.kind}:${e.event.index}:${e.event.name}`).sort();
      assert.deepEqual(seen, ["audioSegments:0:chunk-001.json", "screenshots:1:chunk-002.json"], "only the new files");
      for (const { event, at } of events) {
        assert.equal(event.sessionId, id);
        t.diagnostic(`${event.kind}/${event.name} seen ${at - written} ms after the writer closed it`);
      }
      const before = events.length;
      stop();
      await writeFile(`${dir}/screenshots/chunk-003.json`, "{}");
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(events.length, before, "no events after unsubscribe");
    } finally {
      stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
