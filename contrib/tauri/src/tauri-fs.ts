/**
 * FsAdapter over Tauri's fs plugin. Typed against the few functions it needs,
 * so this package has no dependency on `@tauri-apps/plugin-fs`; pass the
 * plugin module itself:
 *
 *     import * as fs from "@tauri-apps/plugin-fs";
 *     import { SessionReader, SessionStorage } from "@sessionfs/tauri-reader";
 *     import { tauriFsAdapter } from "@sessionfs/tauri-reader/tauri";
 *     const reader = new SessionReader("/home/me/sessions", tauriFsAdapter(fs));
 *     const storage = new SessionStorage("/home/me/sessions", tauriWritableFsAdapter(fs));
 *
 * The app's capability file must allow `fs:allow-read-text-file`,
 * `fs:allow-read-dir` and `fs:allow-exists` on the mount (e.g. the scope
 * `$HOME/sessions/**`); SessionStorage also needs `fs:allow-write-text-file`,
 * `fs:allow-rename`, `fs:allow-remove` and `fs:allow-mkdir`. The plugin has no
 * fsync: a write is durable when the mount commits the closed file.
 */

import type { DirEntry, FsAdapter, WritableFsAdapter } from "./fs.js";

/** The subset of `@tauri-apps/plugin-fs` the reader uses (its signatures, options omitted). */
export interface TauriFsModule {
  readTextFile(path: string | URL, options?: unknown): Promise<string>;
  readDir(
    path: string | URL,
    options?: unknown,
  ): Promise<{ name: string; isFile: boolean; isDirectory: boolean; isSymlink: boolean }[]>;
  exists(path: string | URL, options?: unknown): Promise<boolean>;
}

/** What SessionStorage uses of the plugin besides the reads. */
export interface TauriWritableFsModule extends TauriFsModule {
  writeTextFile(path: string | URL, data: string, options?: unknown): Promise<void>;
  rename(oldPath: string | URL, newPath: string | URL, options?: unknown): Promise<void>;
  remove(path: string | URL, options?: { recursive?: boolean }): Promise<void>;
  mkdir(path: string | URL, options?: { recursive?: boolean }): Promise<void>;
}

export function tauriFsAdapter(fs: TauriFsModule): FsAdapter {
  return {
    readTextFile: (path: string) => fs.readTextFile(path),
    async readDir(path: string): Promise<DirEntry[]> {
      const entries = await fs.readDir(path);
      return entries.map(({ name, isFile, isDirectory, isSymlink }) => ({ name, isFile, isDirectory, isSymlink }));
    },
    exists: (path: string) => fs.exists(path),
  };
}

export function tauriWritableFsAdapter(fs: TauriWritableFsModule): WritableFsAdapter {
  return {
    ...tauriFsAdapter(fs),
    writeTextFile: (path: string, text: string) => fs.writeTextFile(path, text),
    rename: (from: string, to: string) => fs.rename(from, to),
    remove: (path: string, options: { recursive?: boolean } = {}) => fs.remove(path, { recursive: options.recursive ?? false }),
    mkdir: (path: string) => fs.mkdir(path, { recursive: true }),
  };
}
