/**
 * An LRU of parsed session files (chunk files, large objects), bounded in
 * bytes: the size of an entry is the length of the file's text. A long
 * session's chunks then cost memory only while they are hot.
 */

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Entries dropped because their file was written or changed. */
  invalidations: number;
  entries: number;
  bytes: number;
  maxBytes: number;
}

interface Entry {
  value: unknown;
  bytes: number;
}

export class ChunkCache {
  private readonly entries = new Map<string, Entry>();
  private held = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private invalidations = 0;

  constructor(readonly maxBytes: number) {}

  /** The cached value of `path` (and it becomes the most recently used), or undefined. */
  get(path: string): unknown {
    const entry = this.entries.get(path);
    if (entry === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(path);
    this.entries.set(path, entry);
    return entry.value;
  }

  /** Cache `value` as `path`'s content; a value larger than the whole bound is not kept. */
  set(path: string, value: unknown, bytes: number): void {
    this.drop(path);
    if (bytes > this.maxBytes) return;
    this.entries.set(path, { value, bytes });
    this.held += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.held <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.held -= entry.bytes;
      this.evictions++;
    }
  }

  /** Forget `path` because it changed. */
  invalidate(path: string): void {
    if (this.drop(path)) this.invalidations++;
  }

  /** Forget every path under `dir` (a session directory); all paths when `dir` is undefined. */
  clear(dir?: string): void {
    for (const path of [...this.entries.keys()]) {
      if (dir === undefined || path.startsWith(dir + "/")) this.drop(path);
    }
  }

  stats(): CacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      invalidations: this.invalidations,
      entries: this.entries.size,
      bytes: this.held,
      maxBytes: this.maxBytes,
    };
  }

  private drop(path: string): boolean {
    const entry = this.entries.get(path);
    if (entry === undefined) return false;
    this.entries.delete(path);
    this.held -= entry.bytes;
    return true;
  }
}
