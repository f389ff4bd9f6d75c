/**
 * SessionReader: the app's read side of the storage API (MODEL.md, "Operations
 * the app calls") over a sessionfs mount, using nothing but readTextFile,
 * readDir and exists (FsAdapter), so the same code runs in a Tauri front end
 * (fs plugin) and in Node (fs/promises).
 *
 *     const reader = new SessionReader("/home/me/sessions", nodeFsAdapter());
 *     const list = await reader.listAllMetadata({ status: "completed", limit: 50 });
 *     for await (const part of reader.iterateChunks("screenshots", list[0].id)) show(part.records);
 *
 * What it returns equals what the Python `store.sessions.SessionStore` returns
 * for the same store: `listAllMetadata` lists the sessions the catalog lists
 * (a directory under sessions/ with a metadata.json holding a JSON object),
 * ordered newest `startTime` first, then by id; `loadFullSession` merges like
 * `load_full_session` (store/layout.py, `_legacy` record included).
 */

import { joinPath, type DirEntry, type FsAdapter } from "./fs.js";
import {
  ARRAY_KIND_LIST,
  ARRAY_KINDS,
  LARGE_OBJECTS,
  LayoutError,
  METADATA_FILE,
  chunkCountFor,
  chunkPath,
  compareCodePoints,
  isObject,
  mergeSession,
  parseChunkFileName,
  type ArrayKind,
} from "./layout.js";
import type {
  ArrayKindName,
  AudioSegment,
  ChunkFileEvent,
  ChunkFileTypes,
  ChunkRecordTypes,
  FullSession,
  ScreenshotRecord,
  SessionMetadata,
  VideoChunk,
} from "./types.js";

export const SESSIONS_DIR = "sessions";
export const SEARCH_DIR = "search";
export const ATTACHMENTS_DIR = "attachments";
export const DEFAULT_WATCH_INTERVAL_MS = 250;
export const DEFAULT_CONCURRENCY = 16;

/** A file could not be read or parsed; names the path. */
export class SessionFsError extends Error {
  override name = "SessionFsError";
  constructor(
    message: string,
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface SessionReaderOptions {
  /** How many files listAllMetadata / loadAll read at once (default 16). */
  concurrency?: number;
  /** Default polling interval of `watch` in ms (default 250). */
  watchIntervalMs?: number;
}

/** The filters of SessionStore.list_metadata; every filter given must match. */
export interface ListFilter {
  /** One status or any of several. */
  status?: string | string[];
  /** Inclusive bounds on `startTime` (ISO 8601 UTC "Z" strings compare as text). */
  startAfter?: string;
  startBefore?: string;
  /** Sessions having at least one of these tags. */
  tags?: string | string[];
  /** Sessions having at least one of these topic ids. */
  topicIds?: string | string[];
  limit?: number;
  offset?: number;
}

export interface WatchOptions {
  /** Polling interval in ms (default: the reader's watchIntervalMs, 250). */
  intervalMs?: number;
  /** Which arrays to watch (default all three). */
  kinds?: ArrayKindName[];
  /** Report the chunk files already there on the first poll (default false). */
  includeExisting?: boolean;
  /** Errors of a poll or of the callback (default: ignored, polling goes on). */
  onError?: (error: unknown) => void;
}

/** Stops watching; `ready` resolves once the first listing is taken (later files are reported). */
export type Unsubscribe = (() => void) & { ready: Promise<void> };

/** One chunk of records, as `iterateChunks` yields them. */
export interface ChunkPart<K extends ArrayKindName> {
  index: number;
  chunkCount: number;
  records: ChunkRecordTypes[K][];
}

type Json = unknown;

/** The message of an error from an FsAdapter (Node gives Errors, Tauri gives strings). */
function reason(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function asList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return typeof value === "string" ? [value] : value;
}

function kindOf(kind: ArrayKindName): ArrayKind {
  const k = ARRAY_KINDS[kind];
  if (k === undefined) throw new TypeError(`unknown array kind ${JSON.stringify(kind)}`);
  return k;
}

function indexInt(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value);
}

/** Map with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export class SessionReader {
  readonly root: string;
  readonly fs: FsAdapter;
  readonly concurrency: number;
  readonly watchIntervalMs: number;

  /** `mountPath`: the sessionfs mountpoint (the directory holding `sessions/`). */
  constructor(mountPath: string, fs: FsAdapter, options: SessionReaderOptions = {}) {
    this.root = mountPath;
    this.fs = fs;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.watchIntervalMs = options.watchIntervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  }

  // -- paths --------------------------------------------------------------------------

  /** `<mount>/sessions/<id>/<parts...>`; the id must be a plain name. */
  sessionPath(id: string, ...parts: string[]): string {
    if (typeof id !== "string" || id === "" || id === "." || id === ".." || id.includes("/") || id.includes("\0")) {
      throw new TypeError(`session id: not a plain file name: ${JSON.stringify(id)}`);
    }
    return joinPath(this.root, SESSIONS_DIR, id, ...parts);
  }

  /** Where the binary of an attachment lives (read it with the fs plugin's readFile). */
  attachmentPath(id: string, attachmentId: string, ext: string): string {
    return this.sessionPath(id, ATTACHMENTS_DIR, `${attachmentId}.${ext.replace(/^\./, "")}`);
  }

  // -- file access ----------------------------------------------------------------------

  private async readText(path: string): Promise<string> {
    try {
      return await this.fs.readTextFile(path);
    } catch (cause) {
      throw new SessionFsError(`${path}: cannot read: ${reason(cause)}`, path, { cause });
    }
  }

  private parse(text: string, path: string): Json {
    try {
      return JSON.parse(text);
    } catch (cause) {
      throw new SessionFsError(`${path}: not valid JSON: ${(cause as Error).message}`, path, { cause });
    }
  }

  /** Parsed JSON of a file. */
  async readJson(path: string): Promise<Json> {
    return this.parse(await this.readText(path), path);
  }

  /** Parsed JSON of a file, or undefined when the file does not exist. */
  async readJsonIfExists(path: string): Promise<Json | undefined> {
    let text: string;
    try {
      text = await this.fs.readTextFile(path);
    } catch (cause) {
      if (!(await this.fs.exists(path))) return undefined;
      throw new SessionFsError(`${path}: cannot read: ${reason(cause)}`, path, { cause });
    }
    return this.parse(text, path);
  }

  private async readDirIfExists(path: string): Promise<DirEntry[] | undefined> {
    try {
      return await this.fs.readDir(path);
    } catch (cause) {
      if (!(await this.fs.exists(path))) return undefined;
      throw new SessionFsError(`${path}: cannot list: ${reason(cause)}`, path, { cause });
    }
  }

  // -- metadata -------------------------------------------------------------------------

  /** Names of the session directories under `sessions/`, sorted. */
  async listSessionIds(): Promise<string[]> {
    const dir = joinPath(this.root, SESSIONS_DIR);
    let entries: DirEntry[];
    try {
      entries = await this.fs.readDir(dir);
    } catch (cause) {
      throw new SessionFsError(`${dir}: cannot list (is sessionfs mounted at ${this.root}?)`, dir, { cause });
    }
    return entries
      .filter((e) => e.isDirectory)
      .map((e) => e.name)
      .sort(compareCodePoints);
  }

  /** The session's metadata.json, or null when the session has none. */
  async loadMetadata(id: string): Promise<SessionMetadata | null> {
    const path = this.sessionPath(id, METADATA_FILE);
    const meta = await this.readJsonIfExists(path);
    if (meta === undefined) return null;
    if (!isObject(meta)) throw new SessionFsError(`${path}: expected a JSON object`, path);
    return meta as SessionMetadata;
  }

  /**
   * Metadata of every session, newest `startTime` first, then by id (as
   * SessionStore.list_metadata), optionally filtered. Reads every
   * metadata.json, `concurrency` at a time. Directories without a
   * metadata.json holding a JSON object are not sessions (the catalog skips
   * them too); any other read error rejects.
   */
  async listAllMetadata(filter: ListFilter = {}): Promise<SessionMetadata[]> {
    const ids = await this.listSessionIds();
    const metas = await mapLimit(ids, this.concurrency, async (id) => {
      const path = this.sessionPath(id, METADATA_FILE);
      let text: string;
      try {
        text = await this.fs.readTextFile(path);
      } catch (cause) {
        if (!(await this.fs.exists(path))) return null;
        throw new SessionFsError(`${path}: cannot read: ${reason(cause)}`, path, { cause });
      }
      let meta: Json;
      try {
        meta = JSON.parse(text);
      } catch {
        return null;
      }
      return isObject(meta) ? { id, meta: meta as SessionMetadata } : null;
    });
    const statuses = asList(filter.status);
    const tags = asList(filter.tags);
    const topics = asList(filter.topicIds);
    const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
    const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
    const rows = metas.filter((row): row is { id: string; meta: SessionMetadata } => {
      if (row === null) return false;
      const { meta } = row;
      const start = str(meta.startTime);
      const status = str(meta.status);
      if (statuses.length && (status === null || !statuses.includes(status))) return false;
      if (filter.startAfter !== undefined && (start === null || compareCodePoints(start, filter.startAfter) < 0)) {
        return false;
      }
      if (filter.startBefore !== undefined && (start === null || compareCodePoints(start, filter.startBefore) > 0)) {
        return false;
      }
      if (tags.length && !strs(meta.tags).some((t) => tags.includes(t))) return false;
      if (topics.length && !strs(meta.topicIds).some((t) => topics.includes(t))) return false;
      return true;
    });
    rows.sort((a, b) => {
      const sa = str(a.meta.startTime);
      const sb = str(b.meta.startTime);
      if (sa !== sb) {
        if (sa === null) return 1; // NULLs last, as SQLite orders them in DESC
        if (sb === null) return -1;
        return compareCodePoints(sb, sa);
      }
      return compareCodePoints(a.id, b.id);
    });
    const offset = filter.offset ?? 0;
    const end = filter.limit === undefined ? undefined : offset + filter.limit;
    return rows.slice(offset, end).map((r) => r.meta);
  }

  // -- large objects --------------------------------------------------------------------

  /** A large object by its legacy field name ("summary", "fullTranscription", ...); null when absent. */
  async loadLargeObject(id: string, field: string): Promise<Json> {
    const name = LARGE_OBJECTS[field];
    if (name === undefined) {
      throw new TypeError(`large object: unknown field ${JSON.stringify(field)}; one of ${Object.keys(LARGE_OBJECTS)}`);
    }
    const value = await this.readJsonIfExists(this.sessionPath(id, name));
    return value === undefined ? null : value;
  }

  loadSummary(id: string): Promise<Json> {
    return this.loadLargeObject(id, "summary");
  }

  loadAudioInsights(id: string): Promise<Json> {
    return this.loadLargeObject(id, "audioInsights");
  }

  loadCanvasSpec(id: string): Promise<Json> {
    return this.loadLargeObject(id, "canvasSpec");
  }

  async loadTranscription(id: string): Promise<string | null> {
    return (await this.loadLargeObject(id, "fullTranscription")) as string | null;
  }

  async loadContextItems(id: string): Promise<Record<string, unknown>[] | null> {
    return (await this.loadLargeObject(id, "contextItems")) as Record<string, unknown>[] | null;
  }

  // -- chunked arrays ---------------------------------------------------------------------

  /** The whole chunk file `index` (0-based) of `kind`: {sessionId, chunkIndex, <records>}. */
  async loadChunkFile<K extends ArrayKindName>(kind: K, id: string, index: number): Promise<ChunkFileTypes[K]> {
    const k = kindOf(kind);
    if (!indexInt(index) || index < 0) throw new RangeError(`${kind} chunk index: expected a non-negative int, got ${index}`);
    const path = this.sessionPath(id, chunkPath(k, index));
    const chunk = await this.readJsonIfExists(path);
    if (chunk === undefined) {
      throw new SessionFsError(`session ${id}: ${kind} chunk ${index} does not exist (${path})`, path);
    }
    if (!isObject(chunk) || !Array.isArray(chunk[k.key])) {
      throw new SessionFsError(`${path}: expected an object with a ${JSON.stringify(k.key)} list`, path);
    }
    return chunk as unknown as ChunkFileTypes[K];
  }

  /** The records of chunk `index` (0-based; chunk-001.json is 0) of `kind`. */
  async loadChunk<K extends ArrayKindName>(kind: K, id: string, index: number): Promise<ChunkRecordTypes[K][]> {
    const chunk = (await this.loadChunkFile(kind, id, index)) as unknown as Record<string, unknown>;
    return chunk[kindOf(kind).key] as ChunkRecordTypes[K][];
  }

  loadScreenshotsChunk(id: string, index: number): Promise<ScreenshotRecord[]> {
    return this.loadChunk("screenshots", id, index);
  }

  loadAudioSegmentsChunk(id: string, index: number): Promise<AudioSegment[]> {
    return this.loadChunk("audioSegments", id, index);
  }

  loadVideoChunksChunk(id: string, index: number): Promise<VideoChunk[]> {
    return this.loadChunk("videoChunks", id, index);
  }

  /** Number of chunk files of `kind` the manifest lists (0 when it lists none). */
  chunkCount(meta: SessionMetadata, kind: ArrayKindName): number {
    const k = kindOf(kind);
    const manifest = meta.chunks as unknown;
    const entry = isObject(manifest) ? manifest[k.field] : undefined;
    if (entry === undefined || entry === null) return 0;
    const count = isObject(entry) ? entry.count : undefined;
    const size = isObject(entry) ? entry.chunkSize : undefined;
    if (!indexInt(count) || count < 0 || !indexInt(size) || size < 1) {
      throw new SessionFsError(
        `session ${String(meta.id)}: chunks.${k.field}: expected non-negative count and positive chunkSize, ` +
          `got ${JSON.stringify(entry)}`,
        METADATA_FILE,
      );
    }
    return chunkCountFor(count, size);
  }

  private async requireMetadata(id: string): Promise<SessionMetadata> {
    const meta = await this.loadMetadata(id);
    if (meta === null) {
      const path = this.sessionPath(id, METADATA_FILE);
      throw new SessionFsError(`session ${id}: no ${METADATA_FILE}`, path);
    }
    return meta;
  }

  /**
   * Chunk by chunk, in order: progressive loading for a long session. Pass the
   * metadata you already hold to save reading it again.
   */
  async *iterateChunks<K extends ArrayKindName>(
    kind: K,
    id: string,
    metadata?: SessionMetadata,
  ): AsyncGenerator<ChunkPart<K>, void, undefined> {
    const meta = metadata ?? (await this.requireMetadata(id));
    const chunkCount = this.chunkCount(meta, kind);
    for (let index = 0; index < chunkCount; index++) {
      yield { index, chunkCount, records: await this.loadChunk(kind, id, index) };
    }
  }

  /** Every record of `kind`, in order ([] for a session without any). */
  async loadAll<K extends ArrayKindName>(kind: K, id: string): Promise<ChunkRecordTypes[K][]> {
    const meta = await this.requireMetadata(id);
    const indexes = Array.from({ length: this.chunkCount(meta, kind) }, (_, i) => i);
    const parts = await mapLimit(indexes, this.concurrency, (i) => this.loadChunk(kind, id, i));
    return parts.flat() as ChunkRecordTypes[K][];
  }

  loadAllScreenshots(id: string): Promise<ScreenshotRecord[]> {
    return this.loadAll("screenshots", id);
  }

  loadAllAudioSegments(id: string): Promise<AudioSegment[]> {
    return this.loadAll("audioSegments", id);
  }

  loadAllVideoChunks(id: string): Promise<VideoChunk[]> {
    return this.loadAll("videoChunks", id);
  }

  // -- whole sessions ----------------------------------------------------------------------

  /**
   * The legacy monolithic document merged from the files (metadata + large
   * objects + arrays, `_legacy` honoured); null when there is no session.
   */
  async loadFullSession(id: string): Promise<FullSession | null> {
    const meta = await this.loadMetadata(id);
    if (meta === null) return null;
    const dir = this.sessionPath(id);
    const files = new Map<string, Json>([[METADATA_FILE, meta]]);
    const names = new Set(((await this.readDirIfExists(dir)) ?? []).filter((e) => !e.isDirectory).map((e) => e.name));
    const jobs: [string, string][] = [];
    for (const name of Object.values(LARGE_OBJECTS)) {
      if (names.has(name)) jobs.push([name, joinPath(dir, name)]);
    }
    for (const kind of ARRAY_KIND_LIST) {
      const count = this.chunkCount(meta, kind.field);
      for (let i = 0; i < count; i++) jobs.push([chunkPath(kind, i), joinPath(dir, chunkPath(kind, i))]);
    }
    const values = await mapLimit(jobs, this.concurrency, ([, path]) => this.readJsonIfExists(path));
    jobs.forEach(([rel], i) => {
      if (values[i] !== undefined) files.set(rel, values[i]);
    });
    try {
      return mergeSession(files);
    } catch (error) {
      if (error instanceof LayoutError) throw new LayoutError(`session ${id}: ${error.message}`, { cause: error });
      throw error;
    }
  }

  // -- attachments ---------------------------------------------------------------------------

  /** File names in the session's attachments directory, sorted ([] when there is none). */
  async listAttachments(id: string): Promise<string[]> {
    const entries = (await this.readDirIfExists(this.sessionPath(id, ATTACHMENTS_DIR))) ?? [];
    return entries.map((e) => e.name).sort(compareCodePoints);
  }

  // -- search --------------------------------------------------------------------------------

  /**
   * Session ids matching `query`, best first: the entries of the mount's
   * read-only view `search/<query>/` (listing it runs the query).
   */
  async search(query: string): Promise<string[]> {
    if (typeof query !== "string" || query.trim() === "" || query === "." || query === "..") {
      throw new TypeError(`search query: expected a non-empty string, got ${JSON.stringify(query)}`);
    }
    if (query.includes("/") || query.includes("\0")) {
      throw new TypeError(`search query ${JSON.stringify(query)}: must not contain '/' or NUL (it is a directory name)`);
    }
    const view = joinPath(this.root, SEARCH_DIR);
    const dir = joinPath(view, query);
    try {
      return (await this.fs.readDir(dir)).map((e) => e.name);
    } catch (cause) {
      if (!(await this.fs.exists(view))) {
        throw new SessionFsError(`${view}: no search view in this mount (is it a sessionfs mount with search?)`, view, {
          cause,
        });
      }
      throw new SessionFsError(`${dir}: search failed: ${reason(cause)}`, dir, { cause });
    }
  }

  /** Metadata of the sessions matching `query`, best first. */
  async searchMetadata(query: string): Promise<SessionMetadata[]> {
    const ids = await this.search(query);
    const metas = await mapLimit(ids, this.concurrency, (id) => this.loadMetadata(id));
    return metas.filter((m): m is SessionMetadata => m !== null);
  }

  // -- watching ------------------------------------------------------------------------------

  /**
   * Call `callback` for every chunk file that appears in the session
   * (screenshots/, audio-segments/, video-chunks/), by polling readDir every
   * `intervalMs` (default 250 ms). New files of one poll are reported in
   * chunk order. A file rewritten in place (a record appended to the last
   * chunk) is not a new file; watch metadata.json's `chunks` for counts.
   * Returns the function that stops watching.
   */
  watch(id: string, callback: (event: ChunkFileEvent) => void, options: WatchOptions = {}): Unsubscribe {
    const interval = options.intervalMs ?? this.watchIntervalMs;
    const kinds = (options.kinds ?? ARRAY_KIND_LIST.map((k) => k.field)).map(kindOf);
    const onError = options.onError ?? (() => {});
    const seen = new Map<string, Set<string>>(kinds.map((k) => [k.field, new Set<string>()]));
    const base = this.sessionPath(id);
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const poll = async (report: boolean): Promise<void> => {
      for (const kind of kinds) {
        const dir = joinPath(base, kind.directory);
        let entries: DirEntry[] | undefined;
        try {
          entries = await this.readDirIfExists(dir);
        } catch (error) {
          onError(error);
          continue;
        }
        const known = seen.get(kind.field)!;
        const fresh: { index: number; name: string }[] = [];
        for (const entry of entries ?? []) {
          if (entry.isDirectory || known.has(entry.name)) continue;
          const index = parseChunkFileName(entry.name);
          if (index === null) continue;
          known.add(entry.name);
          fresh.push({ index, name: entry.name });
        }
        if (!report || stopped) continue;
        fresh.sort((a, b) => a.index - b.index);
        for (const { index, name } of fresh) {
          try {
            callback({ sessionId: id, kind: kind.field, index, name, path: joinPath(dir, name) });
          } catch (error) {
            onError(error);
          }
        }
      }
    };
    const loop = async (): Promise<void> => {
      if (stopped) return;
      try {
        await poll(true);
      } catch (error) {
        onError(error);
      }
      if (!stopped) timer = setTimeout(loop, interval);
    };
    const ready = poll(options.includeExisting ?? false)
      .catch(onError)
      .then(() => {
        if (!stopped) timer = setTimeout(loop, interval);
      });
    const unsubscribe = (() => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    }) as Unsubscribe;
    unsubscribe.ready = ready;
    return unsubscribe;
  }
}

