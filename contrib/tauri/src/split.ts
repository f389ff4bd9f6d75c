/**
 * Splitting a session into its files, the inverse of mergeSession: a port of
 * store/core/layout.py split_session, chunk_records and build_manifest_entry,
 * with the same checks, the same `_legacy` record and the same key order, so
 * what SessionStorage writes is what the Python SessionStore writes. Pure.
 */

import {
  ARRAY_KIND_LIST,
  ARRAY_KINDS,
  HAS_FLAGS,
  LARGE_OBJECTS,
  LEGACY_KEY,
  LayoutError,
  MERGE_ORDER,
  METADATA_FILE,
  RESERVED_KEYS,
  STORAGE_VERSION,
  chunkCountFor,
  chunkFileName,
  chunkPath,
  checkComponent,
  hasOwn,
  isInt,
  isObject,
  setOwn,
  typeName,
  validateSessionId,
  type ArrayKind,
} from "./layout.js";
import type { ArrayKindName, ChunkManifestEntry } from "./types.js";

type JsonObject = Record<string, unknown>;

const TOP_ARRAYS: readonly string[] = ["screenshots", "audioSegments"];
const VIDEO = ARRAY_KINDS.videoChunks;

function kindOf(kind: ArrayKind | ArrayKindName): ArrayKind {
  const k = typeof kind === "string" ? ARRAY_KINDS[kind] : kind;
  if (k === undefined) throw new LayoutError(`kind: unknown array kind ${JSON.stringify(kind)}`);
  return k;
}

/** `records` if it is a list of objects; else a LayoutError naming `what[i]`. */
export function checkRecords(records: unknown, what: string, first = 0): JsonObject[] {
  if (!Array.isArray(records)) throw new LayoutError(`${what}: expected a list, got ${typeName(records)}`);
  records.forEach((record, i) => {
    if (!isObject(record)) throw new LayoutError(`${what}[${first + i}]: expected a dict, got ${typeName(record)}`);
  });
  return records as JsonObject[];
}

/** Manifest entry for `count` records: {count, chunkCount, chunkSize}. */
export function buildManifestEntry(kind: ArrayKind | ArrayKindName, count: number): ChunkManifestEntry {
  const k = kindOf(kind);
  if (!isInt(count) || count < 0) throw new LayoutError(`${k.field} count: expected a non-negative int, got ${count}`);
  return { count, chunkCount: chunkCountFor(count, k.perChunk), chunkSize: k.perChunk };
}

function chunks(kind: ArrayKind, sid: string, records: unknown[], start: number): Map<string, JsonObject> {
  const n = kind.perChunk;
  const out = new Map<string, JsonObject>();
  for (let i = 0; i < chunkCountFor(records.length, n); i++) {
    const chunk: JsonObject = { sessionId: sid, chunkIndex: start + i };
    setOwn(chunk, kind.key, records.slice(i * n, (i + 1) * n));
    out.set(chunkPath(kind, start + i), chunk);
  }
  return out;
}

/** Cut `records` into chunk files, the first being chunk `start`: relative path -> chunk object. */
export function chunkRecords(
  kind: ArrayKind | ArrayKindName,
  sessionId: string,
  records: unknown,
  start = 0,
): Map<string, JsonObject> {
  const k = kindOf(kind);
  const sid = validateSessionId(sessionId);
  chunkFileName(start);
  return chunks(k, sid, checkRecords(records, k.field, start * k.perChunk), start);
}

/**
 * A legacy monolithic session as its files: relative path -> JSON value
 * (metadata.json first, then large objects, then chunk files). The values
 * share nested objects with `session`.
 */
export function splitSession(session: unknown): Map<string, unknown> {
  if (!isObject(session)) throw new LayoutError(`session: expected a dict, got ${typeName(session)}`);
  if (!hasOwn(session, "id")) throw new LayoutError("id: missing");
  const sid = checkComponent(session.id, "id");

  const meta: JsonObject = {};
  const large = new Map<string, unknown>();
  const arrays = new Map<string, unknown[]>();
  const absent = TOP_ARRAYS.filter((key) => !hasOwn(session, key));
  const nulls: string[] = [];
  const fields: JsonObject = {};
  for (const [key, value] of Object.entries(session)) {
    if (TOP_ARRAYS.includes(key)) {
      if (value === null) nulls.push(key);
      else arrays.set(key, checkRecords(value, key));
    } else if (hasOwn(LARGE_OBJECTS, key)) {
      if (value === null) nulls.push(key);
      else large.set(LARGE_OBJECTS[key]!, value);
    } else if (RESERVED_KEYS.includes(key)) {
      setOwn(fields, key, value);
    } else if (key === "video" && isObject(value)) {
      const video: JsonObject = {};
      for (const [k, v] of Object.entries(value)) if (k !== "chunks") setOwn(video, k, v);
      setOwn(meta, key, video);
      if (!hasOwn(value, "chunks")) absent.push(VIDEO.field);
      else if (value.chunks === null) nulls.push(VIDEO.field);
      else arrays.set(VIDEO.field, checkRecords(value.chunks, "video.chunks"));
    } else if (key === "video" && value !== null) {
      throw new LayoutError(`video: expected a dict or null, got ${typeName(value)}`);
    } else {
      setOwn(meta, key, value);
    }
  }

  const files = new Map<string, unknown>([[METADATA_FILE, meta], ...large]);
  const manifest: JsonObject = {};
  for (const kind of ARRAY_KIND_LIST) {
    const records = arrays.get(kind.field) ?? [];
    manifest[kind.field] = buildManifestEntry(kind, records.length);
    for (const [path, chunk] of chunks(kind, sid, records, 0)) files.set(path, chunk);
  }
  setOwn(meta, "chunks", manifest);
  for (const [flag, field] of Object.entries(HAS_FLAGS)) {
    const value = hasOwn(session, field) ? session[field] : null;
    setOwn(meta, flag, field === "video" ? isObject(value) : value !== null && value !== undefined);
  }
  setOwn(meta, "storageVersion", STORAGE_VERSION);

  const keys = Object.keys(session);
  const moved = keys.filter((key) => MERGE_ORDER.includes(key));
  const inPlace = keys.filter((key) => !MERGE_ORDER.includes(key));
  inPlace.push(...[...moved].sort((a, b) => MERGE_ORDER.indexOf(a) - MERGE_ORDER.indexOf(b)));
  const order: Record<string, number> = {};
  if (inPlace.some((key, i) => key !== keys[i])) for (const key of moved) order[key] = keys.indexOf(key);
  const legacy: JsonObject = {};
  if (absent.length) legacy.absent = absent;
  if (nulls.length) legacy.null = nulls;
  if (Object.keys(fields).length) legacy.fields = fields;
  if (Object.keys(order).length) legacy.order = order;
  if (Object.keys(legacy).length) setOwn(meta, LEGACY_KEY, legacy);
  return files;
}
