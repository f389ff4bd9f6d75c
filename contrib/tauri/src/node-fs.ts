/**
 * FsAdapter over Node's `fs/promises`: what the tests and the benchmark use.
 *
 *     import { SessionReader } from "@sessionfs/tauri-reader";
 *     import { nodeFsAdapter } from "@sessionfs/tauri-reader/node";
 *     const reader = new SessionReader("/home/me/sessions", nodeFsAdapter());
 */

import { access, opendir, readFile } from "node:fs/promises";

import type { DirEntry, FsAdapter } from "./fs.js";

export function nodeFsAdapter(): FsAdapter {
  return {
    readTextFile: (path: string) => readFile(path, "utf8"),
    // opendir, not readdir: libuv's scandir sorts names, which would lose the order the
    // file system gives (search/<query>/ lists best match first). Tauri's readDir keeps it too.
    async readDir(path: string): Promise<DirEntry[]> {
      const entries: DirEntry[] = [];
      for await (const e of await opendir(path, { bufferSize: 128 })) {
        entries.push({ name: e.name, isFile: e.isFile(), isDirectory: e.isDirectory(), isSymlink: e.isSymbolicLink() });
      }
      return entries;
    },
    async exists(path: string): Promise<boolean> {
      try {
        await access(path);
        return true;
      } catch {
        return false;
      }
    },
  };
}
