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
