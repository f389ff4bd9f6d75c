/**
 * The pure parts, no mount needed: chunk names, paths, and mergeSession on
 * split outputs of store.layout.split_session (computed with Python and
 * pasted here), including the `_legacy` record.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { joinPath } from "../src/fs.js";
import { LayoutError, chunkFileName, chunkPath, compareCodePoints, mergeSession, parseChunkFileName } from "../src/layout.js";

function files(obj: Record<string, unknown>): Map<string, unknown> {
  return new Map(Object.entries(structuredClone(obj)));
}

// split_session({"summary": None, "id": "s1", "name": "x", "video": {"path": "v"},
//                "hasSummary": "orig", "screenshots": [{"id": "a"}], "zeta": 1})
const S1_DOC = {
  summary: null,
  id: "s1",
  name: "x",
  video: { path: "v" },
  hasSummary: "orig",
  screenshots: [{ id: "a" }],
  zeta: 1,
};
const S1_FILES = {
  "metadata.json": {
    id: "s1",
    name: "x",
    video: { path: "v" },
    zeta: 1,
    chunks: {
      screenshots: { count: 1, chunkCount: 1, chunkSize: 20 },
      audioSegments: { count: 0, chunkCount: 0, chunkSize: 100 },
      videoChunks: { count: 0, chunkCount: 0, chunkSize: 100 },
    },
    hasSummary: false,
    hasAudioInsights: false,
    hasCanvasSpec: false,
    hasTranscription: false,
    hasVideo: true,
    storageVersion: 1,
    _legacy: {
      absent: ["audioSegments", "videoChunks"],
      null: ["summary"],
      fields: { hasSummary: "orig" },
      order: { summary: 0, hasSummary: 4, screenshots: 5 },
    },
  },
  "screenshots/chunk-001.json": { sessionId: "s1", chunkIndex: 0, screenshots: [{ id: "a" }] },
};

// split_session({"id": "s2", "screenshots": None, "audioSegments": [], "video": {"path": "p", "chunks": None},
//                "contextItems": [], "storageVersion": 7, "chunks": "mine"})
const S2_DOC = {
  id: "s2",
  screenshots: null,
  audioSegments: [],
  video: { path: "p", chunks: null },
  contextItems: [],
  storageVersion: 7,
  chunks: "mine",
};
const S2_FILES = {
  "metadata.json": {
    id: "s2",
    video: { path: "p" },
    chunks: {
      screenshots: { count: 0, chunkCount: 0, chunkSize: 20 },
      audioSegments: { count: 0, chunkCount: 0, chunkSize: 100 },
      videoChunks: { count: 0, chunkCount: 0, chunkSize: 100 },
    },
    hasSummary: false,
    hasAudioInsights: false,
    hasCanvasSpec: false,
    hasTranscription: false,
    hasVideo: true,
    storageVersion: 1,
    _legacy: {
      null: ["screenshots", "videoChunks"],
      fields: { storageVersion: 7, chunks: "mine" },
      order: { screenshots: 1, audioSegments: 2, contextItems: 4, storageVersion: 5, chunks: 6 },
    },
  },
  "context-items.json": [],
};

describe("layout", () => {
  test("chunk file names are 1-based, 3 digits; chunkIndex is 0-based", () => {
    assert.equal(chunkFileName(0), "chunk-001.json");
    assert.equal(chunkFileName(999), "chunk-1000.json");
    assert.equal(chunkPath("audioSegments", 4), "audio-segments/chunk-005.json");
    assert.equal(chunkPath("videoChunks", 0), "video-chunks/chunk-001.json");
    assert.equal(parseChunkFileName("chunk-001.json"), 0);
    assert.equal(parseChunkFileName("chunk-1000.json"), 999);
    for (const bad of ["chunk-1.json", "chunk-000.json", "chunk-0001.json", "chunk-001.json.tmp", "x"]) {
      assert.equal(parseChunkFileName(bad), null, bad);
    }
    assert.throws(() => chunkFileName(-1), LayoutError);
  });

  test("joinPath", () => {
    assert.equal(joinPath("/mnt/", "sessions", "a"), "/mnt/sessions/a");
    assert.equal(joinPath("/", "sessions"), "/sessions");
    assert.equal(joinPath("C:/Users/me/mnt", "/sessions/", "x.json"), "C:/Users/me/mnt/sessions/x.json");
  });

  test("compareCodePoints orders like Python and SQLite", () => {
    const words = ["b", "a", "\u{1F41B}", "\uFF21", "ab", ""];
    assert.deepEqual(words.sort(compareCodePoints), ["", "a", "ab", "b", "\uFF21", "\u{1F41B}"]);
  });

  test("mergeSession restores the legacy document: null, absent, reserved fields, key order", () => {
    for (const [doc, split] of [
      [S1_DOC, S1_FILES],
      [S2_DOC, S2_FILES],
    ] as const) {
      const merged = mergeSession(files(split));
      assert.deepEqual(merged, doc);
      assert.deepEqual(Object.keys(merged), Object.keys(doc));
    }
  });

  test("files win over the _legacy record (data written after an import is kept)", () => {
    const f = files(S1_FILES);
    const meta = f.get("metadata.json") as { chunks: Record<string, unknown> };
    meta.chunks.audioSegments = { count: 1, chunkCount: 1, chunkSize: 100 };
    f.set("audio-segments/chunk-001.json", { sessionId: "s1", chunkIndex: 0, segments: [{ id: "seg" }] });
    f.set("summary.json", { late: true });
    const merged = mergeSession(f);
    // merge_session gives exactly this (checked with Python):
    assert.deepEqual(Object.keys(merged), ["summary", "id", "name", "video", "hasSummary", "screenshots", "zeta", "audioSegments"]);
    assert.deepEqual(merged.summary, { late: true });
    assert.deepEqual(merged.audioSegments, [{ id: "seg" }]);
  });

  test("keys like __proto__ stay plain data", () => {
    const f = files(S2_FILES);
    const meta = JSON.parse('{"__proto__": {"polluted": true}}');
    Object.assign(f.get("metadata.json") as object, { extra: meta });
    const merged = mergeSession(f) as Record<string, unknown>;
    assert.deepEqual(Object.keys(merged.extra as object), ["__proto__"]);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("inconsistent files give a LayoutError naming the file", () => {
    const cases: [string, (f: Map<string, unknown>) => void][] = [
      ["metadata.json: missing", (f) => f.delete("metadata.json")],
      ["screenshots/chunk-001.json: missing", (f) => f.delete("screenshots/chunk-001.json")],
      [
        "screenshots/chunk-001.json: sessionId",
        (f) => ((f.get("screenshots/chunk-001.json") as { sessionId: string }).sessionId = "other"),
      ],
      [
        "screenshots/chunk-002.json: beyond chunkCount 1",
        (f) => f.set("screenshots/chunk-002.json", { sessionId: "s1", chunkIndex: 1, screenshots: [] }),
      ],
      [
        "chunks.screenshots.chunkCount: expected 1",
        (f) => ((f.get("metadata.json") as { chunks: { screenshots: { chunkCount: number } } }).chunks.screenshots.chunkCount = 3),
      ],
      ["summary: must not be inline", (f) => Object.assign(f.get("metadata.json") as object, { summary: {} })],
      ["_legacy.order: expected a dict of non-negative ints", (f) => Object.assign((f.get("metadata.json") as { _legacy: object })._legacy, { order: { x: -1 } })],
      ["must not contain '/'", (f) => Object.assign(f.get("metadata.json") as object, { id: "a/x" })],
    ];
    for (const [message, mutate] of cases) {
      const f = files(S1_FILES);
      mutate(f);
      assert.throws(() => mergeSession(f), (err: unknown) => err instanceof LayoutError && err.message.includes(message), message);
    }
  });
});
