//! sessionfs-reader: list and load sessions from a sessionfs mount with nothing
//! but `std::fs`, the way the Tauri back end does it. No crates:
//!
//!     rustc -O --edition 2021 -o sessionfs-reader contrib/rust-reader/src/main.rs
//!     sessionfs-reader list ~/sessions           # every session's metadata, summarized
//!     sessionfs-reader load ~/sessions <id>      # one session: metadata + every chunk file
//!
//! Both print one canonical JSON document on stdout (compact, key order fixed)
//! that tests/test_clients.py compares with what the Python session API
//! (`store.sessions.SessionStore`) returns for the same store. Timings go to
//! stderr. Exit status 1 with a one-line message naming the file on errors,
//! 2 on usage errors. Builds with rustc >= 1.63 (Debian 12's).
//!
//! `list_sessions` and `load_session` are written as Tauri commands would be:
//! plain functions returning `Result<_, String>`; in an app they get
//! `#[tauri::command]` and the mount path from the app's settings.

mod json;

use json::Json;
use std::env;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const SESSIONS_DIR: &str = "sessions";
const METADATA_FILE: &str = "metadata.json";
const ATTACHMENTS_DIR: &str = "attachments";

/// One chunked array of the layout (store/layout.py ARRAY_KINDS).
struct ArrayKind {
    /// Manifest key in metadata.json `chunks`.
    field: &'static str,
    /// Directory in the session.
    directory: &'static str,
    /// Key of the record list inside a chunk file.
    key: &'static str,
}

const KINDS: [ArrayKind; 3] = [
    ArrayKind { field: "screenshots", directory: "screenshots", key: "screenshots" },
    ArrayKind { field: "audioSegments", directory: "audio-segments", key: "segments" },
    ArrayKind { field: "videoChunks", directory: "video-chunks", key: "chunks" },
];

/// Legacy field name -> file name (store/layout.py LARGE_OBJECTS).
const LARGE_OBJECTS: [(&str, &str); 5] = [
    ("summary", "summary.json"),
    ("audioInsights", "audio-insights.json"),
    ("canvasSpec", "canvas-spec.json"),
    ("fullTranscription", "transcription.json"),
    ("contextItems", "context-items.json"),
];

// -- file access ---------------------------------------------------------------------

fn read_json(path: &Path) -> Result<Json, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    json::parse_bytes(&bytes).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))
}

/// `Ok(None)` when the file does not exist.
fn read_json_if_exists(path: &Path) -> Result<Option<Json>, String> {
    match fs::read(path) {
        Ok(bytes) => json::parse_bytes(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Names in a directory, sorted (byte order = code point order); empty when it does not exist.
fn list_names(dir: &Path) -> Result<Vec<String>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: cannot list: {e}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

fn session_dir(mount: &Path, id: &str) -> Result<PathBuf, String> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(format!("session id {id:?}: not a plain file name"));
    }
    Ok(mount.join(SESSIONS_DIR).join(id))
}

// -- the commands ----------------------------------------------------------------------

/// One entry of the session list: the directory name and its metadata.json.
pub struct SessionMeta {
    pub id: String,
    pub metadata: Json,
}

/// `list_sessions`: the metadata of every session, newest `startTime` first,
/// then by id, exactly like `SessionStore.list_metadata()`. A directory under
/// sessions/ is a session when it holds a regular metadata.json with a JSON
/// object (what the store's catalog indexes); others are skipped.
pub fn list_sessions(mount: &Path) -> Result<Vec<SessionMeta>, String> {
    let dir = mount.join(SESSIONS_DIR);
    let entries = fs::read_dir(&dir)
        .map_err(|e| format!("{}: cannot list: {e} (is sessionfs mounted at {}?)", dir.display(), mount.display()))?;
    let mut sessions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let id = match entry.file_name().into_string() {
            Ok(id) => id,
            Err(name) => {
                eprintln!("sessionfs-reader: skipping {name:?}: the name is not UTF-8");
                continue;
            }
        };
        if !is_dir {
            continue;
        }
        let path = entry.path().join(METADATA_FILE);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // deleted meanwhile
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
        };
        match json::parse_bytes(&bytes) {
            Ok(metadata @ Json::Object(_)) => sessions.push(SessionMeta { id, metadata }),
            _ => continue, // not JSON or not an object: not indexed, not listed
        }
    }
    sessions.sort_by(|a, b| {
        let sa = a.metadata.get("startTime").and_then(Json::as_str);
        let sb = b.metadata.get("startTime").and_then(Json::as_str);
        match (sa, sb) {
            (Some(x), Some(y)) if x != y => y.cmp(x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            _ => a.id.cmp(&b.id),
        }
    });
    Ok(sessions)
}

/// The records of one array, read chunk file by chunk file.
pub struct LoadedArray {
    pub field: &'static str,
    pub chunk_count: usize,
    pub records: Vec<Json>,
}

pub struct LoadedSession {
    pub id: String,
    pub metadata: Json,
    /// (legacy field name, value) of the large-object files that exist.
    pub large_objects: Vec<(&'static str, Json)>,
    pub arrays: Vec<LoadedArray>,
    pub attachments: Vec<String>,
}

/// (count, chunkSize) of `kind` in the manifest; (0, _) when it lists none.
fn manifest_entry(metadata: &Json, kind: &ArrayKind, where_: &str) -> Result<(usize, usize), String> {
    let entry = match metadata.get("chunks").and_then(|c| c.get(kind.field)) {
        None | Some(Json::Null) => return Ok((0, 1)),
        Some(entry) => entry,
    };
    let count = entry.get("count").and_then(Json::as_i64);
    let size = entry.get("chunkSize").and_then(Json::as_i64);
    match (count, size) {
        (Some(count), Some(size)) if count >= 0 && size >= 1 => Ok((count as usize, size as usize)),
        _ => Err(format!(
            "{where_}: chunks.{}: expected non-negative count and positive chunkSize, got {}",
            kind.field,
            entry.to_json()
        )),
    }
}

/// `load_session`: metadata.json, every large-object file and every chunk file
/// the manifest lists, checked against the manifest (sessionId, chunkIndex,
/// record counts).
pub fn load_session(mount: &Path, id: &str) -> Result<LoadedSession, String> {
    let dir = session_dir(mount, id)?;
    let meta_path = dir.join(METADATA_FILE);
    let metadata = read_json_if_exists(&meta_path)?.ok_or_else(|| format!("session {id}: no {METADATA_FILE}"))?;
    if metadata.as_object().is_none() {
        return Err(format!("{}: expected a JSON object", meta_path.display()));
    }
    let mut large_objects = Vec::new();
    for (field, name) in LARGE_OBJECTS {
        if let Some(value) = read_json_if_exists(&dir.join(name))? {
            large_objects.push((field, value));
        }
    }
    let mut arrays = Vec::new();
    for kind in &KINDS {
        let (count, size) = manifest_entry(&metadata, kind, &meta_path.display().to_string())?;
        let chunk_count = (count + size - 1) / size;
        let mut records = Vec::with_capacity(count);
        for index in 0..chunk_count {
            let path = dir.join(kind.directory).join(format!("chunk-{:03}.json", index + 1));
            let chunk = read_json(&path)?;
            if chunk.get("sessionId").and_then(Json::as_str) != Some(id) {
                return Err(format!("{}: sessionId is not {id:?}", path.display()));
            }
            if chunk.get("chunkIndex").and_then(Json::as_i64) != Some(index as i64) {
                return Err(format!("{}: chunkIndex is not {index}", path.display()));
            }
            let part = match chunk.get(kind.key).and_then(Json::as_array) {
                Some(part) => part,
                None => return Err(format!("{}: expected an object with a {:?} list", path.display(), kind.key)),
            };
            let expected = size.min(count - index * size);
            if part.len() != expected {
                return Err(format!("{}: {} records, the manifest says {expected}", path.display(), part.len()));
            }
            records.extend(part.iter().cloned());
        }
        arrays.push(LoadedArray { field: kind.field, chunk_count, records });
    }
    let attachments = list_names(&dir.join(ATTACHMENTS_DIR))?;
    Ok(LoadedSession { id: id.to_string(), metadata, large_objects, arrays, attachments })
}

// -- canonical summaries (what the test compares) ---------------------------------------

fn obj(pairs: Vec<(&str, Json)>) -> Json {
    Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn field(value: &Json, key: &str) -> Json {
    value.get(key).cloned().unwrap_or(Json::Null)
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "str",
        Json::Array(_) => "list",
        Json::Object(_) => "dict",
    }
}

/// Keys of an object, items of an array, characters (code points) of a string.
fn size_of(value: &Json) -> Json {
    match value {
        Json::String(s) => Json::from_i64(s.chars().count() as i64),
        Json::Array(items) => Json::from_i64(items.len() as i64),
        Json::Object(pairs) => Json::from_i64(pairs.len() as i64),
        _ => Json::Null,
    }
}

fn list_summary(sessions: &[SessionMeta]) -> Json {
    let items = sessions
        .iter()
        .map(|s| {
            let m = &s.metadata;
            let counts = KINDS
                .iter()
                .map(|k| {
                    let count = m.get("chunks").and_then(|c| c.get(k.field)).map(|e| field(e, "count"));
                    (k.field.to_string(), count.unwrap_or(Json::Null))
                })
                .collect();
            obj(vec![
                ("id", Json::str(&s.id)),
                ("name", field(m, "name")),
                ("status", field(m, "status")),
                ("startTime", field(m, "startTime")),
                ("tags", field(m, "tags")),
                ("topicIds", field(m, "topicIds")),
                ("version", field(m, "version")),
                ("counts", Json::Object(counts)),
            ])
        })
        .collect();
    obj(vec![("count", Json::from_i64(sessions.len() as i64)), ("sessions", Json::Array(items))])
}

fn session_summary(s: &LoadedSession) -> Json {
    let large = LARGE_OBJECTS
        .iter()
        .map(|(name, _)| {
            let value = s.large_objects.iter().find(|(f, _)| f == name).map(|(_, v)| v);
            let entry = match value {
                None => obj(vec![("present", Json::Bool(false))]),
                Some(v) => obj(vec![
                    ("present", Json::Bool(true)),
                    ("type", Json::str(type_name(v))),
                    ("size", size_of(v)),
                ]),
            };
            (name.to_string(), entry)
        })
        .collect();
    let summary_keys = s
        .large_objects
        .iter()
        .find(|(f, _)| *f == "summary")
        .and_then(|(_, v)| v.as_object())
        .map(|pairs| Json::Array(pairs.iter().map(|(k, _)| Json::str(k)).collect()))
        .unwrap_or(Json::Null);
    let arrays = s
        .arrays
        .iter()
        .map(|a| {
            let mut pairs = vec![
                ("count", Json::from_i64(a.records.len() as i64)),
                ("chunkCount", Json::from_i64(a.chunk_count as i64)),
                ("ids", Json::Array(a.records.iter().map(|r| field(r, "id")).collect())),
                ("first", a.records.first().cloned().unwrap_or(Json::Null)),
                ("last", a.records.last().cloned().unwrap_or(Json::Null)),
            ];
            match a.field {
                "screenshots" => {
                    let ocr: usize = a
                        .records
                        .iter()
                        .filter_map(|r| r.get("analysis")?.get("extractedText")?.as_array().map(|l| l.len()))
                        .sum();
                    pairs.push(("ocrLines", Json::from_i64(ocr as i64)));
                }
                "audioSegments" => {
                    let total: f64 = a.records.iter().filter_map(|r| r.get("duration")?.as_f64()).sum();
                    let talking = a.records.iter().filter(|r| r.get("isEmpty").and_then(Json::as_bool) == Some(false));
                    pairs.push(("totalDuration", Json::from_f64(total)));
                    pairs.push(("nonEmpty", Json::from_i64(talking.count() as i64)));
                }
                _ => {}
            }
            (a.field.to_string(), obj(pairs))
        })
        .collect();
    obj(vec![
        ("id", Json::str(&s.id)),
        ("metadata", s.metadata.clone()),
        ("largeObjects", Json::Object(large)),
        ("summaryKeys", summary_keys),
        ("arrays", Json::Object(arrays)),
        ("attachments", Json::Array(s.attachments.iter().map(Json::str).collect())),
    ])
}

// -- command line ----------------------------------------------------------------------

const USAGE: &str = "usage: sessionfs-reader list MOUNTPOINT\n       sessionfs-reader load MOUNTPOINT SESSION_ID";

fn run(args: &[String]) -> Result<Json, String> {
    let started = Instant::now();
    match args {
        [cmd, mount] if cmd == "list" => {
            let sessions = list_sessions(Path::new(mount))?;
            eprintln!("listed {} sessions in {:.1} ms", sessions.len(), started.elapsed().as_secs_f64() * 1e3);
            Ok(list_summary(&sessions))
        }
        [cmd, mount, id] if cmd == "load" => {
            let session = load_session(Path::new(mount), id)?;
            let records: usize = session.arrays.iter().map(|a| a.records.len()).sum();
            eprintln!("loaded {id} ({records} records) in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
            Ok(session_summary(&session))
        }
        _ => Err(String::new()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(summary) => {
            let mut out = io::stdout().lock();
            if writeln!(out, "{}", summary.to_json()).and_then(|_| out.flush()).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(message) if message.is_empty() => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(message) => {
            eprintln!("sessionfs-reader: {message}");
            ExitCode::from(1)
        }
    }
}
