/**
 * The only file-system calls SessionReader makes. They map one-to-one onto
 * Tauri's fs plugin (`@tauri-apps/plugin-fs`: readTextFile, readDir, exists),
 * so the reader runs unchanged in a Tauri front end and in Node.
 */

/** One directory entry, as Tauri's `readDir` returns it (symlinks are not followed). */
export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

export interface FsAdapter {
  /** The whole file as UTF-8 text. Rejects when the file cannot be read. */
  readTextFile(path: string): Promise<string>;
  /** The entries of a directory (no "." or ".."). Rejects when it cannot be listed. */
  readDir(path: string): Promise<DirEntry[]>;
  /** Whether the path exists (following symlinks). */
  exists(path: string): Promise<boolean>;
}

/**
 * What SessionStorage writes with, beside the reads. Maps onto Tauri's fs
 * plugin (writeTextFile, rename, remove, mkdir) and Node's fs/promises. A file
 * is replaced by writing a temporary name and renaming it over the old one.
 */
export interface WritableFsAdapter extends FsAdapter {
  /** Create or truncate `path` and write `text` (UTF-8); with `sync`, durable before resolving where the adapter can. */
  writeTextFile(path: string, text: string, options?: { sync?: boolean }): Promise<void>;
  /** Rename `from` to `to`, replacing `to` atomically when it exists (POSIX rename). */
  rename(from: string, to: string): Promise<void>;
  /** Remove a file, or a directory with everything in it when `recursive`. Rejects when it does not exist. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  /** Create a directory and its missing parents; resolves when it exists already. */
  mkdir(path: string): Promise<void>;
  /**
   * Make a directory's entries (renames, removals) durable. Absent where the
   * platform offers no fsync (Tauri's fs plugin): durability is then what the
   * file system gives a closed file (on a sessionfs mount: a closed file
   * survives a crash of the daemon).
   */
  syncDir?(path: string): Promise<void>;
}

/** The final path component of `path`, and the directory holding it. */
export function splitPath(path: string): { dir: string; name: string } {
  const cut = path.lastIndexOf("/");
  return cut < 0 ? { dir: ".", name: path } : { dir: cut === 0 ? "/" : path.slice(0, cut), name: path.slice(cut + 1) };
}

/** Join path parts with "/" (the mount is POSIX; Tauri accepts "/" everywhere). */
export function joinPath(base: string, ...parts: string[]): string {
  let out = base.length > 1 ? base.replace(/\/+$/, "") : base;
  for (const part of parts) {
    const clean = part.replace(/^\/+|\/+$/g, "");
    if (clean === "") continue;
    out = out === "" ? clean : out.endsWith("/") ? out + clean : `${out}/${clean}`;
  }
  return out;
}
