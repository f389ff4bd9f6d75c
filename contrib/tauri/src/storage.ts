/**
 * SessionStorage: the app's write side of the storage API (the original
 * design's ChunkedSessionStorage) over a sessionfs mount or a plain directory,
 * with the same effect on disk as the Python `store.services.SessionStore`:
 * the same files, the same bytes (json-text.ts), the same manifest, has*
 * flags and reserved keys, the same version rule.
 *
 *     const storage = new SessionStorage("/home/me/sessions", nodeFsAdapter());
 *     await storage.saveMetadata({ id, name: "Standup", status: "active" });
 *     await storage.appendScreenshot(id, shot);     // queued: returns at once
 *     await storage.flush();                         // durable
 *
 * Calls check their input first (bad input: BadInputError, nothing queued),
 * read what they need (through the queue's pending contents, the LRU of
 * parsed files, then the disk), and hand whole new file contents to the
 * PersistenceQueue. The calls of one session run one at a time, in call
 * order, so concurrent appends never lose a record. metadata.json is read
 * afresh (not cached) so a version conflict with another writer is seen.
 * Values returned by loads are shared with the cache: treat them as read-only.
 *
 * One writer per session while it records: appends take the last chunk from
 * the cache, so another process appending to the same session at the same
 * time would be overwritten. After a writer crashed, `recoverSession` lists in
 * the manifest the records whose chunk file was written but whose
 * metadata.json was not, and removes the writer's temporary files.
 */

import { ChunkCache, type CacheStats } from "./cache.js";
import { BadInputError, ConflictError, NotFoundError, StorageError } from "./errors.js";
import { joinPath, type WritableFsAdapter } from "./fs.js";
import { jsonText } from "./json-text.js";
import {
  ARRAY_KIND_LIST,
  HAS_FLAGS,
  LARGE_OBJECTS,
  LayoutError,
  METADATA_FILE,
  STORAGE_VERSION,
  chunkPath,
  isInt,
  isObject,
  mergeSession,
  setOwn,
  typeName,
  validateSessionId,
  type ArrayKind,
} from "./layout.js";
import { ManifestEntry, checkMetadataShape, manifestEntry, withStoreFields } from "./metadata.js";
import { PersistenceQueue, type QueueOptions, type QueueStats } from "./queue.js";
import { SESSIONS_DIR, SessionReader, type Unsubscribe, type WatchOptions } from "./reader.js";
import { arrayKind, checkRecord, largeObjectFile } from "./records.js";
import { buildManifestEntry, chunkRecords, splitSession } from "./split.js";
import type {
  ArrayKindName,
  AudioSegment,
  ChunkRecordTypes,
  FullSession,
  ScreenshotRecord,
  SessionMetadata,
  VideoChunk,
} from "./types.js";

export const DEFAULT_CACHE_BYTES = 50 * 1024 * 1024;

type JsonObject = Record<string, unknown>;

export interface SessionStorageOptions extends QueueOptions {
  /** Bound of the LRU of parsed chunk files and large objects, in bytes of their text (default 50 MiB). */
  cacheBytes?: number;
  /** The clock of `updatedAt` (default: the system clock). */
  now?: () => Date;
}

export interface StorageStats {
  queue: QueueStats;
  cache: CacheStats;
}

const FLAG_OF: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(HAS_FLAGS).map(([flag, field]) => [field, flag]),
);
const TMP_NAME = /^\..+\.[0-9a-z]+-[0-9]+\.tmp$/;

function recordsOf(chunk: JsonObject, kind: ArrayKind): unknown[] {
  return chunk[kind.key] as unknown[];
}

export class SessionStorage {
  readonly root: string;
  readonly fs: WritableFsAdapter;
  /** Reads that need no queue view (listing, search, watch) over the same adapter. */
  readonly reader: SessionReader;
  private readonly queue: PersistenceQueue;
  private readonly cache: ChunkCache;
  private readonly now: () => Date;
  private readonly locks = new Map<string, Promise<void>>();
  private generation = 0;

  /** `mountPath`: the sessionfs mountpoint (or any directory holding `sessions/`). */
  constructor(mountPath: string, fs: WritableFsAdapter, options: SessionStorageOptions = {}) {
    this.root = mountPath;
    this.fs = fs;
    this.reader = new SessionReader(mountPath, fs);
    this.cache = new ChunkCache(options.cacheBytes ?? DEFAULT_CACHE_BYTES);
    this.now = options.now ?? (() => new Date());
    this.queue = new PersistenceQueue(fs, options, (path, value, bytes) => {
      this.generation++;
      if (!path.endsWith("/" + METADATA_FILE)) this.cache.set(path, value, bytes);
    });
  }

  // -- plumbing -------------------------------------------------------------------------

  private sessionDir(sessionId: unknown): string {
    return joinPath(this.root, SESSIONS_DIR, validateSessionId(sessionId));
  }

  /** Run the calls of one session one at a time, in call order. */
  private exclusive<T>(sessionId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(sessionId) ?? Promise.resolve();
    const run = previous.then(async () => {
      await this.queue.room();
      return fn();
    });
    const tail = run.then(
      () => {},
      () => {},
    );
    this.locks.set(sessionId, tail);
    void tail.then(() => {
      if (this.locks.get(sessionId) === tail) this.locks.delete(sessionId);
    });
    return run;
  }

  /** A file's parsed content as this storage sees it (queued, cached, on disk); undefined when absent. */
  private async readFile(path: string, cached: boolean): Promise<unknown> {
    const queued = this.queue.lookup(path);
    if (queued !== undefined) return queued.removed ? undefined : queued.value;
    if (cached) {
      const hit = this.cache.get(path);
      if (hit !== undefined) return hit;
    }
    const generation = this.generation;
    let text: string;
    try {
      text = await this.fs.readTextFile(path);
    } catch (cause) {
      if (!(await this.fs.exists(path))) return undefined;
      throw new StorageError(`${path}: cannot read: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (cause) {
      throw new BadInputError(`${path}: not valid JSON: ${(cause as Error).message}`, { cause });
    }
    if (cached && generation === this.generation && this.queue.lookup(path) === undefined) {
      this.cache.set(path, value, text.length);
    }
    return value;
  }

  private async exists(path: string): Promise<boolean> {
    const queued = this.queue.lookup(path);
    return queued !== undefined ? !queued.removed : this.fs.exists(path);
  }

  private put(path: string, value: unknown, text: string | null, bytes = 0): void {
    this.generation++;
    this.cache.invalidate(path);
    this.queue.put(path, value, text, bytes);
  }

  private remove(path: string): void {
    this.generation++;
    this.cache.invalidate(path);
    this.queue.remove(path);
  }

  /** Queue `value` as a file's JSON, serialized now (small files: metadata, large objects). */
  private putJson(path: string, value: unknown): void {
    const text = jsonText(value, path);
    this.put(path, JSON.parse(text), text);
  }

  private async loadMeta(dir: string): Promise<JsonObject | null> {
    const path = joinPath(dir, METADATA_FILE);
    const meta = await this.readFile(path, false);
    if (meta === undefined) return null;
    if (!isObject(meta)) throw new BadInputError(`${path}: expected a JSON object, got ${typeName(meta)}`);
    return meta;
  }

  private async requireMeta(dir: string, sessionId: string): Promise<JsonObject> {
    const meta = await this.loadMeta(dir);
    if (meta === null) throw new NotFoundError(`session ${sessionId}: no ${METADATA_FILE}; save its metadata first`);
    return meta;
  }

  private async chunkAt(dir: string, kind: ArrayKind, index: number): Promise<JsonObject> {
    const path = joinPath(dir, chunkPath(kind, index));
    const chunk = await this.readFile(path, true);
    if (chunk === undefined) throw new NotFoundError(`${path}: missing, but listed in the ${kind.field} manifest`);
    if (!isObject(chunk) || !Array.isArray(chunk[kind.key])) {
      throw new BadInputError(`${path}: expected an object with a ${JSON.stringify(kind.key)} list`);
    }
    return chunk;
  }

  /** metadata.json with `kind`'s manifest entry replaced, queued. */
  private setManifest(dir: string, meta: JsonObject, kind: ArrayKind, entry: object): void {
    const manifest = isObject(meta.chunks) ? meta.chunks : {};
    const chunks: JsonObject = {};
    for (const [k, v] of Object.entries(manifest)) setOwn(chunks, k, v);
    setOwn(chunks, kind.field, entry);
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(meta)) setOwn(out, k, v);
    setOwn(out, "chunks", chunks);
    this.putJson(joinPath(dir, METADATA_FILE), out);
  }

  private static checkVideo(kind: ArrayKind, meta: JsonObject, sessionId: string, records: unknown[]): void {
    if (kind.field === "videoChunks" && records.length > 0 && !isObject(meta.video)) {
      throw new BadInputError(
        `session ${sessionId}: video chunks need a 'video' object in ${METADATA_FILE}; save it with saveMetadata first`,
      );
    }
  }

  /** Remove chunk files `first`.. of `kind`: those the manifest listed, then stray ones that follow. */
  private async dropChunksFrom(dir: string, kind: ArrayKind, first: number, listed: number): Promise<void> {
    for (let index = first; index < listed || (await this.exists(joinPath(dir, chunkPath(kind, index)))); index++) {
      this.remove(joinPath(dir, chunkPath(kind, index)));
    }
  }

  // -- metadata ----------------------------------------------------------------------------

  /** The session's metadata.json as this storage sees it (queued writes included), or null. */
  async loadMetadata(sessionId: string): Promise<SessionMetadata | null> {
    return (await this.loadMeta(this.sessionDir(sessionId))) as SessionMetadata | null;
  }

  /**
   * Save the app's metadata with optimistic locking; returns what is stored.
   * Let S be the stored `version` and C the caller's (`expectedVersion` if
   * given, else `meta.version`): if S exists and C !== S, ConflictError and
   * nothing is queued. Else the version becomes (S ?? C ?? 0) + 1 and
   * `updatedAt` now; the reserved keys keep their stored values.
   */
  async saveMetadata(meta: Partial<SessionMetadata> & { id: string }, expectedVersion?: number): Promise<SessionMetadata> {
    const sid = checkMetadataShape(meta);
    const dir = this.sessionDir(sid);
    return this.exclusive(sid, async () => {
      const stored = await this.loadMeta(dir);
      const storedVersion = stored !== null && isInt(stored.version) ? stored.version : null;
      const callerVersion = expectedVersion !== undefined && expectedVersion !== null ? expectedVersion : meta.version;
      if (storedVersion !== null && callerVersion !== storedVersion) {
        throw new ConflictError(
          `session ${sid}: metadata version conflict: stored version ${storedVersion}, caller has version ` +
            `${callerVersion === undefined ? "None" : JSON.stringify(callerVersion)}`,
          sid,
          storedVersion,
          callerVersion,
        );
      }
      const base = storedVersion ?? callerVersion;
      const out: JsonObject = {};
      for (const [k, v] of Object.entries(meta)) setOwn(out, k, v);
      out.version = (isInt(base) ? base : 0) + 1;
      out.updatedAt = this.now().toISOString();
      const saved = withStoreFields(out, stored);
      this.putJson(joinPath(dir, METADATA_FILE), saved);
      return saved as SessionMetadata;
    });
  }

  /** True when the session has a chunked metadata.json (storageVersion 1). */
  async isChunked(sessionId: string): Promise<boolean> {
    const meta = await this.loadMeta(this.sessionDir(sessionId));
    return meta !== null && meta.storageVersion === STORAGE_VERSION;
  }

  // -- large objects -------------------------------------------------------------------------

  /** A large object by its legacy field name ("summary", ...); null when absent. */
  async loadLargeObject(sessionId: string, field: string): Promise<unknown> {
    const value = await this.readFile(joinPath(this.sessionDir(sessionId), largeObjectFile(field)), true);
    return value === undefined ? null : value;
  }

  /** Write (or, with null, remove) a large object and keep its has* flag in step. */
  async saveLargeObject(sessionId: string, field: string, value: unknown): Promise<void> {
    const dir = this.sessionDir(sessionId);
    const path = joinPath(dir, largeObjectFile(field));
    const text = value === null ? null : jsonText(value, path);
    return this.exclusive(sessionId, async () => {
      const meta = await this.requireMeta(dir, sessionId);
      if (text === null) this.remove(path);
      else this.put(path, JSON.parse(text), text);
      const flag = FLAG_OF[field];
      if (flag !== undefined && meta[flag] !== (value !== null)) {
        const out: JsonObject = {};
        for (const [k, v] of Object.entries(meta)) setOwn(out, k, v);
        setOwn(out, flag, value !== null);
        this.putJson(joinPath(dir, METADATA_FILE), out);
      }
    });
  }

  saveSummary(sessionId: string, summary: Record<string, unknown> | null): Promise<void> {
    return this.saveLargeObject(sessionId, "summary", summary);
  }

  saveAudioInsights(sessionId: string, insights: Record<string, unknown> | null): Promise<void> {
    return this.saveLargeObject(sessionId, "audioInsights", insights);
  }

  saveCanvasSpec(sessionId: string, spec: Record<string, unknown> | null): Promise<void> {
    return this.saveLargeObject(sessionId, "canvasSpec", spec);
  }

  saveTranscription(sessionId: string, text: string | null): Promise<void> {
    return this.saveLargeObject(sessionId, "fullTranscription", text);
  }

  saveContextItems(sessionId: string, items: Record<string, unknown>[] | null): Promise<void> {
    return this.saveLargeObject(sessionId, "contextItems", items);
  }

  // -- record arrays ------------------------------------------------------------------------

  /** The records of chunk `index` (0-based) of `kind`. */
  async loadChunk<K extends ArrayKindName>(kind: K, sessionId: string, index: number): Promise<ChunkRecordTypes[K][]> {
    const k = arrayKind(kind);
    const dir = this.sessionDir(sessionId);
    const entry = manifestEntry(await this.loadMeta(dir), k, dir);
    if (!isInt(index) || index < 0 || index >= entry.chunkCount) {
      throw new BadInputError(
        `session ${sessionId}: ${k.field} chunk ${index} does not exist (the session has ${entry.chunkCount} ${k.field} chunks)`,
      );
    }
    return recordsOf(await this.chunkAt(dir, k, index), k).slice() as ChunkRecordTypes[K][];
  }

  /** Every record of `kind`, in order ([] for a session without any). */
  async loadAll<K extends ArrayKindName>(kind: K, sessionId: string): Promise<ChunkRecordTypes[K][]> {
    const k = arrayKind(kind);
    const dir = this.sessionDir(sessionId);
    const entry = manifestEntry(await this.loadMeta(dir), k, dir);
    const records: unknown[] = [];
    for (let index = 0; index < entry.chunkCount; index++) records.push(...recordsOf(await this.chunkAt(dir, k, index), k));
    return records as ChunkRecordTypes[K][];
  }

  /** Replace every record of `kind`: re-chunked, stale chunk files removed, the manifest updated. */
  async saveAll<K extends ArrayKindName>(kind: K, sessionId: string, records: ChunkRecordTypes[K][]): Promise<void> {
    const k = arrayKind(kind);
    const dir = this.sessionDir(sessionId);
    if (!Array.isArray(records)) throw new BadInputError(`session ${sessionId}: ${k.field}: expected a list, got ${typeName(records)}`);
    records.forEach((record, i) => checkRecord(record, `session ${sessionId}: ${k.field}[${i}]`));
    const copy = JSON.parse(jsonText(records, joinPath(dir, k.directory))) as JsonObject[];
    return this.exclusive(sessionId, async () => {
      const meta = await this.requireMeta(dir, sessionId);
      SessionStorage.checkVideo(k, meta, sessionId, copy);
      const old = manifestEntry(meta, k, dir);
      const files = chunkRecords(k, sessionId, copy);
      for (const [rel, chunk] of files) this.put(joinPath(dir, rel), chunk, null, JSON.stringify(chunk).length);
      await this.dropChunksFrom(dir, k, files.size, old.chunkCount);
      this.setManifest(dir, meta, k, buildManifestEntry(k, copy.length));
    });
  }

  /** Add one record: the last chunk file (or a new one) and metadata.json are queued. */
  async append<K extends ArrayKindName>(kind: K, sessionId: string, record: ChunkRecordTypes[K]): Promise<void> {
    const k = arrayKind(kind);
    const dir = this.sessionDir(sessionId);
    checkRecord(record, `session ${sessionId}: ${k.field} record`);
    const text = jsonText(record, joinPath(dir, k.directory));
    const copy = JSON.parse(text) as unknown;
    return this.exclusive(sessionId, async () => {
      const meta = await this.requireMeta(dir, sessionId);
      SessionStorage.checkVideo(k, meta, sessionId, [copy]);
      const entry = manifestEntry(meta, k, dir);
      const index = Math.floor(entry.count / entry.chunkSize);
      const used = entry.count % entry.chunkSize;
      let chunk: JsonObject;
      if (used > 0) {
        const old = await this.chunkAt(dir, k, index);
        const have = recordsOf(old, k).length;
        if (have !== used) {
          throw new BadInputError(`${joinPath(dir, chunkPath(k, index))}: ${have} records, the manifest says ${used}`);
        }
        chunk = {};
        for (const [key, v] of Object.entries(old)) setOwn(chunk, key, v);
      } else {
        chunk = { sessionId, chunkIndex: index };
      }
      setOwn(chunk, k.key, [...(used > 0 ? recordsOf(chunk, k) : []), copy]);
      this.put(joinPath(dir, chunkPath(k, index)), chunk, null, text.length * (used + 1));
      this.setManifest(dir, meta, k, new ManifestEntry(entry.count + 1, entry.chunkSize).asJson());
    });
  }

  saveScreenshots(sessionId: string, records: ScreenshotRecord[]): Promise<void> {
    return this.saveAll("screenshots", sessionId, records);
  }

  appendScreenshot(sessionId: string, record: ScreenshotRecord): Promise<void> {
    return this.append("screenshots", sessionId, record);
  }

  saveAudioSegments(sessionId: string, records: AudioSegment[]): Promise<void> {
    return this.saveAll("audioSegments", sessionId, records);
  }

  appendAudioSegment(sessionId: string, record: AudioSegment): Promise<void> {
    return this.append("audioSegments", sessionId, record);
  }

  saveVideoChunks(sessionId: string, records: VideoChunk[]): Promise<void> {
    return this.saveAll("videoChunks", sessionId, records);
  }

  appendVideoChunk(sessionId: string, record: VideoChunk): Promise<void> {
    return this.append("videoChunks", sessionId, record);
  }

  // -- whole sessions -------------------------------------------------------------------------

  /** The legacy monolithic document merged from the files as this storage sees them; null when there is none. */
  async loadFullSession(sessionId: string): Promise<FullSession | null> {
    const dir = this.sessionDir(sessionId);
    const meta = await this.loadMeta(dir);
    if (meta === null) return null;
    const files = new Map<string, unknown>([[METADATA_FILE, meta]]);
    for (const name of Object.values(LARGE_OBJECTS)) {
      const value = await this.readFile(joinPath(dir, name), true);
      if (value !== undefined) files.set(name, value);
    }
    for (const kind of ARRAY_KIND_LIST) {
      for (let index = 0; index < manifestEntry(meta, kind, dir).chunkCount; index++) {
        const chunk = await this.readFile(joinPath(dir, chunkPath(kind, index)), true);
        if (chunk !== undefined) files.set(chunkPath(kind, index), chunk);
      }
    }
    try {
      return mergeSession(files);
    } catch (error) {
      if (error instanceof LayoutError) throw new BadInputError(`session ${sessionId}: ${error.message}`, { cause: error });
      throw error;
    }
  }

  /** A legacy document's files, serialized now: a bad document fails before anything is queued. */
  private splitChecked(session: unknown): { sid: string; dir: string; files: Map<string, string> } {
    const split = splitSession(session);
    const sid = (session as JsonObject).id as string;
    const dir = this.sessionDir(sid);
    const files = new Map<string, string>();
    for (const [rel, value] of split) files.set(rel, jsonText(value, joinPath(dir, rel)));
    return { sid, dir, files };
  }

  private async writeFull(dir: string, files: Map<string, string>): Promise<void> {
    let old: JsonObject | null;
    try {
      old = await this.loadMeta(dir);
    } catch (error) {
      if (!(error instanceof BadInputError)) throw error;
      old = null;
    }
    for (const [rel, text] of files) this.put(joinPath(dir, rel), JSON.parse(text), text);
    for (const name of Object.values(LARGE_OBJECTS)) if (!files.has(name)) this.remove(joinPath(dir, name));
    const manifest = (JSON.parse(files.get(METADATA_FILE)!) as JsonObject).chunks as Record<string, { chunkCount: number }>;
    for (const kind of ARRAY_KIND_LIST) {
      let listed = 0;
      try {
        listed = manifestEntry(old, kind, METADATA_FILE).chunkCount;
      } catch (error) {
        if (!(error instanceof BadInputError)) throw error;
      }
      await this.dropChunksFrom(dir, kind, manifest[kind.field]!.chunkCount, listed);
    }
  }

  /**
   * Store a legacy monolithic session as its files, exactly as given (no
   * version bump). Layout files of an earlier version that the new split does
   * not produce are removed; attachments and the app's own files are kept.
   */
  async saveFullSession(session: FullSession): Promise<void> {
    const { sid, dir, files } = this.splitChecked(session);
    return this.exclusive(sid, () => this.writeFull(dir, files));
  }

  /**
   * Migrate one legacy monolithic session into the chunked layout (its files
   * as saveFullSession writes them). A session already chunked is left as it
   * is: false; true when it was migrated. The legacy document is not changed.
   */
  async migrateFromLegacy(session: FullSession): Promise<boolean> {
    const { sid, dir, files } = this.splitChecked(session);
    return this.exclusive(sid, async () => {
      const meta = await this.loadMeta(dir);
      if (meta !== null && meta.storageVersion === STORAGE_VERSION) return false;
      await this.writeFull(dir, files);
      return true;
    });
  }

  /** Remove the session directory and everything in it (the store releases the references). */
  async deleteSession(sessionId: string): Promise<void> {
    const dir = this.sessionDir(sessionId);
    return this.exclusive(sessionId, async () => {
      this.generation++;
      this.cache.clear(dir);
      this.queue.removeTree(dir);
    });
  }

  /**
   * After a writer of this session crashed: records in chunk files beyond the
   * manifest (the chunk was written, metadata.json was not) are listed in it,
   * and the temporary files of crashed writers are removed. Run it when no other writer
   * is writing the session. Returns how many records each kind gained.
   */
  async recoverSession(sessionId: string): Promise<Record<ArrayKindName, number>> {
    const dir = this.sessionDir(sessionId);
    return this.exclusive(sessionId, async () => {
      let meta = await this.requireMeta(dir, sessionId);
      const gained = { screenshots: 0, audioSegments: 0, videoChunks: 0 };
      for (const kind of ARRAY_KIND_LIST) {
        const entry = manifestEntry(meta, kind, dir);
        let count = entry.count;
        for (;;) {
          const index = Math.floor(count / entry.chunkSize);
          this.cache.invalidate(joinPath(dir, chunkPath(kind, index)));
          const chunk = await this.readFile(joinPath(dir, chunkPath(kind, index)), false);
          const records = isObject(chunk) && chunk.sessionId === sessionId && chunk.chunkIndex === index ? chunk[kind.key] : null;
          const have = Array.isArray(records) ? records.length : 0;
          if (have <= count % entry.chunkSize || have > entry.chunkSize) break;
          count = index * entry.chunkSize + have;
        }
        if (count > entry.count) {
          gained[kind.field] = count - entry.count;
          this.setManifest(dir, meta, kind, new ManifestEntry(count, entry.chunkSize).asJson());
          meta = (await this.loadMeta(dir))!;
        }
      }
      await this.sweepTemporaryFiles(dir);
      return gained;
    });
  }

  private async sweepTemporaryFiles(dir: string): Promise<void> {
    for (const sub of [dir, ...ARRAY_KIND_LIST.map((k) => joinPath(dir, k.directory))]) {
      let names: string[];
      try {
        names = (await this.fs.readDir(sub))
          .filter((e) => e.isFile && TMP_NAME.test(e.name) && !e.name.includes(this.queue.token))
          .map((e) => e.name);
      } catch {
        continue;
      }
      for (const name of names) await this.fs.remove(joinPath(sub, name)).catch(() => {});
    }
  }

  // -- queue, cache, watching -----------------------------------------------------------------

  /** Resolves when everything queued before the call is durable; rejects with a PersistenceError when a write failed. */
  flush(): Promise<void> {
    return this.queue.flush();
  }

  /** Like flush, without hurrying the queue (it keeps its coalescing delay). */
  durable(): Promise<void> {
    return this.queue.durable();
  }

  stats(): StorageStats {
    return { queue: this.queue.stats(), cache: this.cache.stats() };
  }

  /** Forget the cached files of one session. */
  clearSessionCache(sessionId: string): void {
    this.generation++;
    this.cache.clear(this.sessionDir(sessionId));
  }

  /** Forget every cached file. */
  clearCache(): void {
    this.generation++;
    this.cache.clear();
  }

  getCacheStats(): CacheStats {
    return this.cache.stats();
  }

  /**
   * Watch a session for chunk files another writer creates (SessionReader.watch):
   * the session's cached files are dropped on each, then `callback` is told.
   */
  watch(sessionId: string, callback: Parameters<SessionReader["watch"]>[1] = () => {}, options?: WatchOptions): Unsubscribe {
    const dir = this.sessionDir(sessionId);
    return this.reader.watch(
      sessionId,
      (event) => {
        this.generation++;
        this.cache.clear(dir);
        callback(event);
      },
      options,
    );
  }
}
