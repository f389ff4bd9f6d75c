/**
 * The rules of metadata.json that SessionStore enforces when the app saves it
 * (store/services/session_files.py): the shape check, the reserved keys the
 * store maintains, and reading one kind's `chunks` manifest entry. Pure.
 */

import { BadInputError } from "./errors.js";
import {
  ARRAY_KIND_LIST,
  HAS_FLAGS,
  LARGE_OBJECTS,
  RESERVED_KEYS,
  STORAGE_VERSION,
  hasOwn,
  isInt,
  isObject,
  setOwn,
  typeName,
  validateSessionId,
  type ArrayKind,
} from "./layout.js";
import { buildManifestEntry } from "./split.js";

type JsonObject = Record<string, unknown>;

const STORE_FLAGS = Object.keys(HAS_FLAGS).filter((flag) => HAS_FLAGS[flag] !== "video");
const INLINE_FORBIDDEN = ["screenshots", "audioSegments", ...Object.keys(LARGE_OBJECTS)];

/** One kind's entry of the `chunks` manifest. */
export class ManifestEntry {
  constructor(
    readonly count: number,
    readonly chunkSize: number,
  ) {}

  get chunkCount(): number {
    return Math.ceil(this.count / this.chunkSize);
  }

  asJson(): { count: number; chunkCount: number; chunkSize: number } {
    return { count: this.count, chunkCount: this.chunkCount, chunkSize: this.chunkSize };
  }
}

/** The manifest entry of `kind` (count 0 when absent); a malformed one is a BadInputError naming `where`. */
export function manifestEntry(meta: JsonObject | null, kind: ArrayKind, where: string): ManifestEntry {
  const manifest = meta !== null && hasOwn(meta, "chunks") ? meta.chunks : null;
  const entry = isObject(manifest) && hasOwn(manifest, kind.field) ? manifest[kind.field] : null;
  if (entry === null || entry === undefined) return new ManifestEntry(0, kind.perChunk);
  const count = isObject(entry) ? entry.count : undefined;
  const size = isObject(entry) ? entry.chunkSize : undefined;
  if (!isInt(count) || count < 0 || !isInt(size) || size < 1) {
    throw new BadInputError(
      `${where}: chunks.${kind.field}: expected non-negative count and positive chunkSize, got ${JSON.stringify(entry)}`,
    );
  }
  return new ManifestEntry(count, size);
}

/** `meta` with the reserved keys taken from `stored` (defaults for a new session), last. */
export function withStoreFields(meta: JsonObject, stored: JsonObject | null): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(meta)) if (!RESERVED_KEYS.includes(key)) setOwn(out, key, value);
  const chunks: JsonObject = {};
  for (const kind of ARRAY_KIND_LIST) chunks[kind.field] = buildManifestEntry(kind, 0);
  out.chunks = chunks;
  for (const flag of STORE_FLAGS) out[flag] = false;
  out.hasVideo = isObject(meta.video);
  out.storageVersion = STORAGE_VERSION;
  for (const key of RESERVED_KEYS) {
    if (key !== "hasVideo" && stored !== null && hasOwn(stored, key)) setOwn(out, key, stored[key]);
  }
  return out;
}

/** The session id of an app metadata object; a BadInputError if it is unusable. */
export function checkMetadataShape(meta: unknown): string {
  if (!isObject(meta)) throw new BadInputError(`metadata: expected a dict, got ${typeName(meta)}`);
  if (!hasOwn(meta, "id")) throw new BadInputError("metadata: id: missing");
  const sid = validateSessionId(meta.id);
  for (const key of INLINE_FORBIDDEN) {
    if (hasOwn(meta, key)) {
      throw new BadInputError(`session ${sid}: metadata: '${key}' must be saved with its own call, not inline in metadata`);
    }
  }
  const video = meta.video;
  if (isObject(video) && hasOwn(video, "chunks")) {
    throw new BadInputError(`session ${sid}: metadata: video.chunks must be saved with saveVideoChunks`);
  }
  return sid;
}
