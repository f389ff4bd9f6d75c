/**
 * The chunked layout of one session, as store/layout.py defines it, and the
 * merge of its files back into the legacy monolithic document. Pure: no I/O.
 *
 * `mergeSession` is a port of `store.layout.merge_session`: same checks, same
 * `_legacy` round-trip record (absent / null arrays and large objects, the
 * original values of reserved keys, the original top-level key order), so
 * `SessionReader.loadFullSession` returns what the Python
 * `SessionStore.load_full_session` returns, key order included.
 */

import { BadInputError } from "./errors.js";
import type { ArrayKindName, FullSession } from "./types.js";

export const SCREENSHOTS_PER_CHUNK = 20;
export const AUDIO_SEGMENTS_PER_CHUNK = 100;
export const VIDEO_CHUNKS_PER_CHUNK = 100;
export const STORAGE_VERSION = 1;
export const METADATA_FILE = "metadata.json";
export const LEGACY_KEY = "_legacy";

export interface ArrayKind {
  /** Manifest key and legacy field name. */
  field: ArrayKindName;
  /** Directory in the session: "screenshots", "audio-segments", "video-chunks". */
  directory: string;
  /** Key of the record list inside a chunk file. */
  key: "screenshots" | "segments" | "chunks";
  perChunk: number;
}

export const ARRAY_KINDS: Readonly<Record<ArrayKindName, ArrayKind>> = Object.freeze({
  screenshots: { field: "screenshots", directory: "screenshots", key: "screenshots", perChunk: SCREENSHOTS_PER_CHUNK },
  audioSegments: {
    field: "audioSegments",
    directory: "audio-segments",
    key: "segments",
    perChunk: AUDIO_SEGMENTS_PER_CHUNK,
  },
  videoChunks: { field: "videoChunks", directory: "video-chunks", key: "chunks", perChunk: VIDEO_CHUNKS_PER_CHUNK },
});

/** In the order merge_session walks them. */
export const ARRAY_KIND_LIST: readonly ArrayKind[] = [
  ARRAY_KINDS.screenshots,
  ARRAY_KINDS.audioSegments,
  ARRAY_KINDS.videoChunks,
];

const TOP_ARRAYS = ["screenshots", "audioSegments"] as const;

/** Legacy field name -> file name, in layout order. */
export const LARGE_OBJECTS: Readonly<Record<string, string>> = Object.freeze({
  summary: "summary.json",
  audioInsights: "audio-insights.json",
  canvasSpec: "canvas-spec.json",
  fullTranscription: "transcription.json",
  contextItems: "context-items.json",
});

export const HAS_FLAGS: Readonly<Record<string, string>> = Object.freeze({
  hasSummary: "summary",
  hasAudioInsights: "audioInsights",
  hasCanvasSpec: "canvasSpec",
  hasTranscription: "fullTranscription",
  hasVideo: "video",
});

export const RESERVED_KEYS: readonly string[] = ["chunks", ...Object.keys(HAS_FLAGS), "storageVersion", LEGACY_KEY];

/** Where merge puts the keys metadata.json does not hold, absent an "order" record. */
export const MERGE_ORDER: readonly string[] = [...TOP_ARRAYS, ...Object.keys(LARGE_OBJECTS), ...RESERVED_KEYS];

/** A session's files are inconsistent or malformed; the message names the culprit (a BadInputError, as in Python). */
export class LayoutError extends BadInputError {
  override name = "LayoutError";
}

type Json = unknown;
type JsonObject = Record<string, Json>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function isInt(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value);
}

/** The Python type name of a JSON value ("dict", "list", "str", "int", ...), for messages like Python's. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "list";
  if (typeof value === "object") return "dict";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "string") return "str";
  return typeof value;
}

/** Assign an own property, even for keys like "__proto__" that JSON.parse can produce. */
export function setOwn(obj: JsonObject, key: string, value: Json): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** Order strings by Unicode code point (as Python and SQLite do), not by UTF-16 unit. */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      if (x < 0xd800 && y < 0xd800) return x - y;
      const cx = a.codePointAt(i) ?? x;
      const cy = b.codePointAt(i) ?? y;
      return cx - cy;
    }
  }
  return a.length - b.length;
}

export function checkComponent(value: unknown, what: string): string {
  if (typeof value !== "string") throw new LayoutError(`${what}: expected a str, got ${typeName(value)}`);
  const shown = `${what} ${JSON.stringify(value.slice(0, 80))}`;
  if (value === "") throw new LayoutError(`${what}: must not be empty`);
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) {
    throw new LayoutError(`${shown}: not valid UTF-8`);
  }
  const size = new TextEncoder().encode(value).length;
  if (size > 255) throw new LayoutError(`${shown}: longer than 255 UTF-8 bytes (${size})`);
  if (value.startsWith(".")) throw new LayoutError(`${shown}: must not start with '.'`);
  for (const ch of value) {
    if (ch === "/" || ch === "\\") throw new LayoutError(`${shown}: must not contain '${ch}'`);
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
      throw new LayoutError(`${shown}: must not contain control character U+${cp.toString(16).toUpperCase().padStart(4, "0")}`);
    }
  }
  return value;
}

/** `id` if it is usable as a session directory name, else a LayoutError (same rules as Python). */
export function validateSessionId(id: unknown): string {
  return checkComponent(id, "session id");
}

/** `name` if it is a safe single path component (an attachment id, an extension); same rules. */
export function validateName(name: unknown): string {
  return checkComponent(name, "name");
}

/** 0 -> "chunk-001.json": 1-based, at least 3 digits. */
export function chunkFileName(index0: number): string {
  if (!isInt(index0) || index0 < 0) throw new LayoutError(`chunk index: expected a non-negative int, got ${index0}`);
  return `chunk-${String(index0 + 1).padStart(3, "0")}.json`;
}

/** Inverse of chunkFileName (0-based index); null unless `name` is canonical. */
export function parseChunkFileName(name: string): number | null {
  const match = /^chunk-([0-9]{3,})\.json$/.exec(name);
  if (match === null || match[1] === undefined) return null;
  const index0 = Number(match[1]) - 1;
  return index0 >= 0 && Number.isSafeInteger(index0) && chunkFileName(index0) === name ? index0 : null;
}

/** "screenshots/chunk-001.json" for chunk 0 of screenshots. */
export function chunkPath(kind: ArrayKind | ArrayKindName, index0: number): string {
  const k = typeof kind === "string" ? ARRAY_KINDS[kind] : kind;
  return `${k.directory}/${chunkFileName(index0)}`;
}

/** Number of chunk files for `count` records of `chunkSize`. */
export function chunkCountFor(count: number, chunkSize: number): number {
  return Math.ceil(count / chunkSize);
}

function load(files: ReadonlyMap<string, Json>, path: string): Json {
  if (!files.has(path)) throw new LayoutError(`${path}: missing`);
  return files.get(path);
}

interface Legacy {
  absent: Set<string>;
  nulls: Set<string>;
  fields: JsonObject;
  order: Record<string, number>;
}

function readLegacy(meta: JsonObject): Legacy {
  const where = `${METADATA_FILE}: ${LEGACY_KEY}`;
  const legacy = hasOwn(meta, LEGACY_KEY) ? meta[LEGACY_KEY] : {};
  if (!isObject(legacy)) throw new LayoutError(`${where}: expected a dict, got ${typeName(legacy)}`);
  const lists: Set<string>[] = [];
  for (const name of ["absent", "null"]) {
    const entry = hasOwn(legacy, name) ? legacy[name] : [];
    if (!Array.isArray(entry) || !entry.every((x) => typeof x === "string")) {
      throw new LayoutError(`${where}.${name}: expected a list of str`);
    }
    lists.push(new Set(entry as string[]));
  }
  const fields = hasOwn(legacy, "fields") ? legacy.fields : {};
  if (!isObject(fields)) throw new LayoutError(`${where}.fields: expected a dict, got ${typeName(fields)}`);
  const order = hasOwn(legacy, "order") ? legacy.order : {};
  if (!isObject(order) || !Object.values(order).every((p) => isInt(p) && p >= 0)) {
    throw new LayoutError(`${where}.order: expected a dict of non-negative ints`);
  }
  return { absent: lists[0]!, nulls: lists[1]!, fields, order: order as Record<string, number> };
}

function readChunks(files: ReadonlyMap<string, Json>, kind: ArrayKind, sid: string, manifest: JsonObject): Json[] {
  const where = `${METADATA_FILE}: chunks.${kind.field}`;
  const prefix = kind.directory + "/";
  const present: number[] = [];
  for (const path of files.keys()) {
    if (!path.startsWith(prefix)) continue;
    const index0 = parseChunkFileName(path.slice(prefix.length));
    if (index0 !== null) present.push(index0);
  }
  present.sort((a, b) => a - b);
  const entry = hasOwn(manifest, kind.field) ? manifest[kind.field] : null;
  if (entry === null || entry === undefined) {
    if (present.length > 0) {
      throw new LayoutError(`${chunkPath(kind, present[0]!)}: not in the manifest (${where} missing)`);
    }
    return [];
  }
  if (!isObject(entry)) throw new LayoutError(`${where}: expected a dict, got ${typeName(entry)}`);
  const { count, chunkSize: size, chunkCount } = entry;
  if (!isInt(count) || count < 0) {
    throw new LayoutError(`${where}.count: expected a non-negative int, got ${JSON.stringify(count)}`);
  }
  if (!isInt(size) || size < 1) {
    throw new LayoutError(`${where}.chunkSize: expected a positive int, got ${JSON.stringify(size)}`);
  }
  const expectedCount = chunkCountFor(count, size);
  if (!isInt(chunkCount) || chunkCount !== expectedCount) {
    throw new LayoutError(
      `${where}.chunkCount: expected ${expectedCount} for count ${count} and chunkSize ${size}, ` +
        `got ${JSON.stringify(chunkCount)}`,
    );
  }
  const last = present[present.length - 1];
  if (last !== undefined && last >= chunkCount) {
    throw new LayoutError(`${chunkPath(kind, last)}: beyond chunkCount ${chunkCount} in ${where}`);
  }
  const records: Json[] = [];
  for (let index0 = 0; index0 < chunkCount; index0++) {
    const path = chunkPath(kind, index0);
    const chunk = load(files, path);
    if (!isObject(chunk)) throw new LayoutError(`${path}: expected a dict, got ${typeName(chunk)}`);
    if (chunk.sessionId !== sid) {
      throw new LayoutError(`${path}: sessionId ${JSON.stringify(chunk.sessionId)}, expected ${JSON.stringify(sid)}`);
    }
    if (!isInt(chunk.chunkIndex) || chunk.chunkIndex !== index0) {
      throw new LayoutError(`${path}: chunkIndex ${JSON.stringify(chunk.chunkIndex)}, expected ${index0}`);
    }
    const part = chunk[kind.key];
    if (!Array.isArray(part)) throw new LayoutError(`${path}: ${kind.key}: expected a list, got ${typeName(part)}`);
    part.forEach((record, i) => {
      if (!isObject(record)) {
        throw new LayoutError(`${path}: ${kind.key}[${i}]: expected a dict, got ${typeName(record)}`);
      }
    });
    const expected = Math.min(size, count - index0 * size);
    if (part.length !== expected) {
      throw new LayoutError(
        `${path}: ${part.length} records, expected ${expected} (count ${count}, chunkSize ${size} in ${where})`,
      );
    }
    for (const record of part) records.push(record);
  }
  return records;
}

/**
 * Rebuild the legacy monolithic session from its files (relative path -> parsed
 * JSON): metadata.json, the large-object files that exist, and chunk files.
 * Paths the layout does not know are ignored.
 */
export function mergeSession(files: ReadonlyMap<string, Json>): FullSession {
  const meta = load(files, METADATA_FILE);
  if (!isObject(meta)) throw new LayoutError(`${METADATA_FILE}: expected a dict, got ${typeName(meta)}`);
  if (!hasOwn(meta, "id")) throw new LayoutError(`${METADATA_FILE}: id: missing`);
  const sid = checkComponent(meta.id, `${METADATA_FILE}: id`);
  for (const key of [...TOP_ARRAYS, ...Object.keys(LARGE_OBJECTS)]) {
    if (hasOwn(meta, key)) throw new LayoutError(`${METADATA_FILE}: ${key}: must not be inline in metadata`);
  }
  const video = meta.video;
  if (isObject(video) && hasOwn(video, "chunks")) {
    throw new LayoutError(`${METADATA_FILE}: video.chunks: must not be inline in metadata`);
  }
  const { absent, nulls, fields, order } = readLegacy(meta);
  const manifest = hasOwn(meta, "chunks") ? meta.chunks : {};
  if (!isObject(manifest)) throw new LayoutError(`${METADATA_FILE}: chunks: expected a dict, got ${typeName(manifest)}`);

  const doc: JsonObject = {};
  for (const [key, value] of Object.entries(meta)) {
    if (!RESERVED_KEYS.includes(key)) setOwn(doc, key, value);
  }
  const restored = new Map<string, Json>();
  for (const kind of ARRAY_KIND_LIST) {
    let records: Json[] | null = readChunks(files, kind, sid, manifest);
    if (records.length === 0 && absent.has(kind.field)) continue;
    if (records.length === 0 && nulls.has(kind.field)) records = null;
    if (kind.field !== "videoChunks") {
      restored.set(kind.field, records);
    } else if (isObject(video)) {
      const withChunks: JsonObject = {};
      for (const [k, v] of Object.entries(video)) setOwn(withChunks, k, v);
      setOwn(withChunks, "chunks", records);
      setOwn(doc, "video", withChunks);
    } else if (records !== null && records.length > 0) {
      throw new LayoutError(
        `${kind.directory}: ${records.length} video chunks but ${METADATA_FILE} has no video dict`,
      );
    }
  }
  for (const [field, name] of Object.entries(LARGE_OBJECTS)) {
    if (files.has(name)) restored.set(field, files.get(name));
    else if (nulls.has(field)) restored.set(field, null);
  }
  for (const [key, value] of Object.entries(fields)) {
    if (RESERVED_KEYS.includes(key)) restored.set(key, value);
  }

  const keys = Object.keys(doc);
  const placed = Object.entries(order)
    .filter(([key]) => restored.has(key))
    .map(([key, position]) => [position, key] as const)
    .sort((a, b) => a[0] - b[0] || compareCodePoints(a[1], b[1]));
  for (const [position, key] of placed) keys.splice(Math.min(position, keys.length), 0, key);
  for (const key of MERGE_ORDER) {
    if (restored.has(key) && !hasOwn(order, key)) keys.push(key);
  }
  const out: JsonObject = {};
  for (const key of keys) setOwn(out, key, restored.has(key) ? restored.get(key) : doc[key]);
  return out as FullSession;
}
