/**
 * FsAdapter over Tauri's fs plugin. Typed against the few functions it needs,
 * so this package has no dependency on `@tauri-apps/plugin-fs`; pass the
 * plugin module itself:
 *
 *     import * as fs from "@tauri-apps/plugin-fs";
 *     import { SessionReader } from "@sessionfs/tauri-reader";
 *     import { tauriFsAdapter } from "@sessionfs/tauri-reader/tauri";
 *     const reader = new SessionReader("/home/me/sessions", tauriFsAdapter(fs));
 *
 * The app's capability file must allow `fs:allow-read-text-file`,
 * `fs:allow-read-dir` and `fs:allow-exists` on the mount (e.g. the scope
 * `$HOME/sessions/**`).
 */

import type { DirEntry, FsAdapter } from "./fs.js";

/** The subset of `@tauri-apps/plugin-fs` used here (its signatures, options omitted). */
export interface TauriFsModule {
  readTextFile(path: string | URL, options?: unknown): Promise<string>;
  readDir(
    path: string | URL,
    options?: unknown,
  ): Promise<{ name: string; isFile: boolean; isDirectory: boolean; isSymlink: boolean }[]>;
  exists(path: string | URL, options?: unknown): Promise<boolean>;
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
