/**
 * @sessionfs/tauri-reader: read sessions from a sessionfs mount with nothing
 * but readTextFile / readDir / exists. No runtime dependencies.
 *
 *   import * as fs from "@tauri-apps/plugin-fs";              // in a Tauri app
 *   import { SessionReader, tauriFsAdapter } from "@sessionfs/tauri-reader";
 *   const reader = new SessionReader(mountPath, tauriFsAdapter(fs));
 *
 *   import { nodeFsAdapter } from "@sessionfs/tauri-reader/node";  // in Node
 */

export * from "./types.js";
export * from "./fs.js";
export * from "./layout.js";
export * from "./reader.js";
export * from "./tauri-fs.js";
export * from "./errors.js";
export * from "./json-text.js";
export * from "./split.js";
export * from "./metadata.js";
export * from "./records.js";
export * from "./cache.js";
export * from "./queue.js";
export * from "./storage.js";
