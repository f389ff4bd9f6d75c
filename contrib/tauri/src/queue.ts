/**
 * The persistence queue under SessionStorage: calls hand it whole file
 * contents and return at once; it writes them in the background.
 *
 * - Coalescing: a file queued again before its write starts is written once,
 *   with the newest content (ten appends to one chunk: one write).
 * - Atomic replacement: a file is written to a temporary name in its directory
 *   (".<name>.<token>-<n>.tmp", never a name the layout knows), synced, and
 *   renamed over the old one, so a reader or a crash sees the old or the new
 *   file, never a torn one.
 * - Order inside a round: session directories being deleted first, then every
 *   file but metadata.json, then metadata.json, then removals, each phase made
 *   durable (directory sync) before the next: metadata.json never lists a chunk
 *   that is not on disk yet.
 * - Back-pressure: `room()` waits while more than `maxQueueBytes` are queued.
 * - Durability: `flush()` / `durable()` resolve once everything queued before
 *   the call is durable, and reject with a PersistenceError when a write
 *   failed. A failed write stays queued and is retried after `retryDelayMs`;
 *   every failure goes to `onError` and is counted in `stats()`.
 */

import { PersistenceError } from "./errors.js";
import { splitPath, type WritableFsAdapter } from "./fs.js";
import { jsonText } from "./json-text.js";
import { METADATA_FILE } from "./layout.js";

export const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETRY_DELAY_MS = 1000;
const PARALLEL_WRITES = 8;

export interface QueueOptions {
  /** Queued bytes above which `room()` waits (default 64 MiB). */
  maxQueueBytes?: number;
  /** Wait this long after the first queued write before writing, to coalesce more (default 0). */
  coalesceMs?: number;
  /** Delay before retrying failed writes (default 1000 ms). */
  retryDelayMs?: number;
  /** fsync files and directories where the adapter can (default true). */
  sync?: boolean;
  /** Told about every failed round (the writes stay queued). */
  onError?: (error: PersistenceError) => void;
}

export interface QueueStats {
  queuedFiles: number;
  queuedBytes: number;
  writingFiles: number;
  rounds: number;
  filesWritten: number;
  filesRemoved: number;
  treesRemoved: number;
  bytesWritten: number;
  /** Queued contents replaced by a newer one before being written. */
  coalesced: number;
  failures: number;
  lastError: string | null;
}

/** A queued file: its new content (`text` made lazily from `value`), or its removal. */
interface Pending {
  remove: boolean;
  value: unknown;
  text: string | null;
  bytes: number;
  seq: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (error: PersistenceError) => void;
}

type Written = (path: string, value: unknown, bytes: number) => void;

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + "/");
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export class PersistenceQueue {
  private queued = new Map<string, Pending>();
  private queuedTrees: { dir: string; seq: number }[] = [];
  private writing = new Map<string, Pending>();
  private writingTrees: string[] = [];
  private readonly madeDirs = new Set<string>();
  /** In the names of this queue's temporary files. */
  readonly token = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  private tmpCounter = 0;
  private seq = 0;
  private durableSeq = 0;
  private running: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private waiters: Waiter[] = [];
  private roomWaiters: (() => void)[] = [];
  private readonly counters = {
    rounds: 0,
    filesWritten: 0,
    filesRemoved: 0,
    treesRemoved: 0,
    bytesWritten: 0,
    coalesced: 0,
    failures: 0,
  };
  private lastError: string | null = null;
  readonly maxQueueBytes: number;
  private readonly coalesceMs: number;
  private readonly retryDelayMs: number;
  private readonly sync: boolean;
  private readonly onError: (error: PersistenceError) => void;

  /** `onWritten` hears of every file written (its value and size) that nothing newer is queued for, e.g. to cache it. */
  constructor(
    private readonly fs: WritableFsAdapter,
    options: QueueOptions = {},
    private readonly onWritten: Written = () => {},
  ) {
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.coalesceMs = options.coalesceMs ?? 0;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.sync = options.sync ?? true;
    this.onError = options.onError ?? (() => {});
  }

  // -- queueing ----------------------------------------------------------------------

  /** Queue `path`'s new content: `text` when already serialized, else `value` is serialized when written. */
  put(path: string, value: unknown, text: string | null, bytes: number): void {
    this.enqueue(path, { remove: false, value, text, bytes: text?.length ?? bytes, seq: ++this.seq });
  }

  /** Queue the removal of the file `path` (a file that does not exist is fine). */
  remove(path: string): void {
    this.enqueue(path, { remove: true, value: undefined, text: null, bytes: 0, seq: ++this.seq });
  }

  /** Queue the removal of the directory `dir` and everything in it; earlier queued writes under it are dropped. */
  removeTree(dir: string): void {
    for (const path of [...this.queued.keys()]) if (isUnder(path, dir)) this.queued.delete(path);
    this.queuedTrees.push({ dir, seq: ++this.seq });
    this.kick();
  }

  private enqueue(path: string, pending: Pending): void {
    if (this.queued.has(path)) this.counters.coalesced++;
    this.queued.set(path, pending);
    this.kick();
  }

  /** What the queue says `path` holds: `{value}`, `{removed: true}`, or undefined when it has no say. */
  lookup(path: string): { removed: true } | { removed: false; value: unknown } | undefined {
    const pending = this.queued.get(path);
    if (pending !== undefined) return pending.remove ? { removed: true } : { removed: false, value: pending.value };
    if (this.queuedTrees.some((t) => isUnder(path, t.dir))) return { removed: true };
    const writing = this.writing.get(path);
    if (writing !== undefined) return writing.remove ? { removed: true } : { removed: false, value: writing.value };
    if (this.writingTrees.some((dir) => isUnder(path, dir))) return { removed: true };
    return undefined;
  }

  /** Resolves when fewer than maxQueueBytes are queued (at once, usually). */
  room(): Promise<void> {
    if (this.queuedBytes() <= this.maxQueueBytes) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Resolves when everything queued so far is durable; rejects when a write of it failed. */
  durable(): Promise<void> {
    if (this.durableSeq >= this.seq) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ seq: this.seq, resolve, reject }));
  }

  /** Write now (no coalescing delay) and resolve when everything queued so far is durable. */
  flush(): Promise<void> {
    const done = this.durable();
    this.kick(0);
    return done;
  }

  stats(): QueueStats {
    return {
      queuedFiles: this.queued.size + this.queuedTrees.length,
      queuedBytes: this.queuedBytes(),
      writingFiles: this.writing.size + this.writingTrees.length,
      ...this.counters,
      lastError: this.lastError,
    };
  }

  private queuedBytes(): number {
    let bytes = 0;
    for (const p of this.queued.values()) bytes += p.bytes;
    for (const p of this.writing.values()) bytes += p.bytes;
    return bytes;
  }

  // -- writing -----------------------------------------------------------------------

  private hasQueued(): boolean {
    return this.queued.size > 0 || this.queuedTrees.length > 0;
  }

  private kick(delay = this.coalesceMs): void {
    if (this.running !== null) return;
    if (this.timer !== undefined) {
      if (delay > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.drain().finally(() => {
        this.running = null;
      });
    }, delay);
  }

  private async drain(): Promise<void> {
    while (this.hasQueued()) {
      if (!(await this.round())) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.kick(0);
        }, this.retryDelayMs);
        return;
      }
    }
  }

  /** Write everything queued; false when something failed (it is queued again). */
  private async round(): Promise<boolean> {
    this.counters.rounds++;
    const trees = this.queuedTrees;
    const files = this.queued;
    this.queuedTrees = [];
    this.queued = new Map();
    this.writing = files;
    this.writingTrees = trees.map((t) => t.dir);
    const top = Math.max(0, ...trees.map((t) => t.seq), ...[...files.values()].map((p) => p.seq));
    const failed = new Map<string, unknown>();
    const attempt = async (path: string, job: () => Promise<void>): Promise<void> => {
      try {
        await job();
      } catch (error) {
        failed.set(path, error);
      }
    };

    await mapLimit(this.writingTrees, PARALLEL_WRITES, (dir) => attempt(dir, () => this.removeTreeNow(dir)));
    if (failed.size === 0) {
      const entries = [...files.entries()];
      const phases = [
        entries.filter(([path, p]) => !p.remove && splitPath(path).name !== METADATA_FILE),
        entries.filter(([path, p]) => !p.remove && splitPath(path).name === METADATA_FILE),
        entries.filter(([, p]) => p.remove),
      ];
      for (const phase of phases) {
        const byDir = new Map<string, [string, Pending][]>();
        for (const entry of phase) {
          const dir = splitPath(entry[0]).dir;
          byDir.set(dir, [...(byDir.get(dir) ?? []), entry]);
        }
        await mapLimit([...byDir.values()], PARALLEL_WRITES, async (inDir) => {
          for (const [path, p] of inDir) if (failed.size === 0) await attempt(path, () => this.writeNow(path, p));
        });
        if (failed.size > 0) break;
        const dirs = [...byDir.keys()];
        if (this.sync && this.fs.syncDir !== undefined) {
          await mapLimit(dirs, PARALLEL_WRITES, (dir) => attempt(dir, () => this.fs.syncDir!(dir)));
        }
      }
    }

    this.writing = new Map();
    this.writingTrees = [];
    if (failed.size > 0) this.requeue(trees, files, failed);
    else this.durableSeq = Math.max(this.durableSeq, top);
    this.settleWaiters();
    return failed.size === 0;
  }

  private requeue(trees: { dir: string; seq: number }[], files: Map<string, Pending>, failed: Map<string, unknown>): void {
    this.madeDirs.clear();
    this.queuedTrees = [...trees.filter((t) => failed.has(t.dir)), ...this.queuedTrees];
    for (const [path, pending] of files) {
      const superseded = this.queued.has(path) || this.queuedTrees.some((t) => isUnder(path, t.dir) && t.seq > pending.seq);
      if (!superseded) this.queued.set(path, pending);
    }
    this.counters.failures += failed.size;
    const [first] = failed.values();
    const reason = first instanceof Error ? first.message : String(first);
    this.lastError = reason;
    const error = new PersistenceError(
      `${failed.size} write(s) failed, queued again (retry in ${this.retryDelayMs} ms): ${reason}`,
      [...failed.keys()],
      { cause: first },
    );
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(error);
    this.onError(error);
  }

  private settleWaiters(): void {
    const done = this.waiters.filter((w) => w.seq <= this.durableSeq);
    this.waiters = this.waiters.filter((w) => w.seq > this.durableSeq);
    for (const w of done) w.resolve();
    if (this.queuedBytes() <= this.maxQueueBytes) {
      const room = this.roomWaiters;
      this.roomWaiters = [];
      for (const resolve of room) resolve();
    }
  }

  private async removeTreeNow(dir: string): Promise<void> {
    for (const made of [...this.madeDirs]) if (isUnder(made, dir)) this.madeDirs.delete(made);
    try {
      await this.fs.remove(dir, { recursive: true });
    } catch (error) {
      if (await this.fs.exists(dir)) throw error;
    }
    this.counters.treesRemoved++;
  }

  private async writeNow(path: string, pending: Pending): Promise<void> {
    const { dir, name } = splitPath(path);
    if (pending.remove) {
      try {
        await this.fs.remove(path);
        this.counters.filesRemoved++;
      } catch (error) {
        if (await this.fs.exists(path)) throw error;
      }
      return;
    }
    if (!this.madeDirs.has(dir)) {
      await this.fs.mkdir(dir);
      this.madeDirs.add(dir);
    }
    const text = pending.text ?? jsonText(pending.value, path);
    const tmp = `${dir}/.${name}.${this.token}-${++this.tmpCounter}.tmp`;
    await this.fs.writeTextFile(tmp, text, { sync: this.sync });
    try {
      await this.fs.rename(tmp, path);
    } catch (error) {
      await this.fs.remove(tmp).catch(() => {});
      throw error;
    }
    this.counters.filesWritten++;
    this.counters.bytesWritten += text.length;
    const superseded = this.queued.has(path) || this.queuedTrees.some((t) => isUnder(path, t.dir));
    if (!superseded) this.onWritten(path, pending.value, text.length);
  }
}
