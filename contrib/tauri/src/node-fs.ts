/**
 * FsAdapter over Node's `fs/promises`: what the tests and the benchmark use.
 * Writes and fsyncs too (WritableFsAdapter), for SessionStorage.
 *
 *     import { SessionReader } from "@sessionfs/tauri-reader";
 *     import { nodeFsAdapter } from "@sessionfs/tauri-reader/node";
 *     const reader = new SessionReader("/home/me/sessions", nodeFsAdapter());
 */

import { access, mkdir, open, opendir, readFile, rename, rm } from "node:fs/promises";

import type { DirEntry, WritableFsAdapter } from "./fs.js";

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function nodeFsAdapter(): WritableFsAdapter {
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
    async writeTextFile(path: string, text: string, options: { sync?: boolean } = {}): Promise<void> {
      const handle = await open(path, "w");
      try {
        await handle.writeFile(text, "utf8");
        if (options.sync) await handle.sync();
      } finally {
        await handle.close();
      }
    },
    rename: (from: string, to: string) => rename(from, to),
    remove: (path: string, options: { recursive?: boolean } = {}) => rm(path, { recursive: options.recursive ?? false }),
    async mkdir(path: string): Promise<void> {
      await mkdir(path, { recursive: true });
    },
    syncDir: syncPath,
  };
}
