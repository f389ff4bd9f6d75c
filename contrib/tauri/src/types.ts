/**
 * The session data model as the app writes it (../../shared/MODEL.md), in the
 * chunked layout sessionfs mounts (store/layout.py):
 *
 *     sessions/<id>/metadata.json               SessionMetadata
 *     sessions/<id>/summary.json ...            one large object each
 *     sessions/<id>/screenshots/chunk-001.json  ScreenshotChunkFile (20 records)
 *     sessions/<id>/audio-segments/chunk-001.json  AudioSegmentChunkFile (100)
 *     sessions/<id>/video-chunks/chunk-001.json    VideoChunkFile (100)
 *
 * Field names are the app's camelCase. Unknown fields are kept: the app adds
 * fields over time, so every record type has an index signature.
 */

export type SessionStatus = "active" | "paused" | "completed" | "interrupted";

/** ISO 8601 timestamp string, e.g. "2025-01-06T09:57:56.174Z". */
export type IsoTime = string;

// -- records -----------------------------------------------------------------------

export interface ScreenshotAnalysis {
  summary?: string;
  detectedActivity?: string;
  /** OCR lines. */
  extractedText?: string[];
  keyElements?: string[];
  confidence?: number;
  curiosity?: number;
  curiosityReason?: string;
  [key: string]: unknown;
}

export interface ScreenshotRecord {
  id: string;
  sessionId: string;
  timestamp: IsoTime;
  sequenceNumber?: number;
  /** The PNG in sessions/<id>/attachments/<attachmentId>.png */
  attachmentId?: string | null;
  analysis?: ScreenshotAnalysis | null;
  isDuplicate?: boolean;
  duplicateOf?: string | null;
  perceptualHash?: string;
  [key: string]: unknown;
}

export interface AudioSegment {
  id: string;
  sessionId: string;
  timestamp: IsoTime;
  /** Seconds. */
  duration?: number;
  transcription?: string;
  /** The WAV in sessions/<id>/attachments/<attachmentId>.wav */
  attachmentId?: string | null;
  speakerConfidence?: number;
  noiseLevel?: number;
  isEmpty?: boolean;
  [key: string]: unknown;
}

export interface VideoChunk {
  id: string;
  /** Seconds from the start of the video. */
  startTime?: number;
  endTime?: number;
  path?: string;
  topic?: string;
  summary?: string;
  thumbnailScreenshotId?: string;
  [key: string]: unknown;
}

/** `video` as metadata.json holds it: without its `chunks` array. */
export interface VideoInfo {
  path?: string;
  optimizedPath?: string;
  /** Seconds. */
  duration?: number;
  [key: string]: unknown;
}

/** `video` in a merged (full) session: with `chunks`. */
export interface VideoWithChunks extends VideoInfo {
  chunks?: VideoChunk[] | null;
}

// -- chunk files ---------------------------------------------------------------------

/** Fields every chunk file has; `chunkIndex` is 0-based (chunk-001.json has 0). */
export interface ChunkFileBase {
  sessionId: string;
  chunkIndex: number;
}

export interface ScreenshotChunkFile extends ChunkFileBase {
  screenshots: ScreenshotRecord[];
}

export interface AudioSegmentChunkFile extends ChunkFileBase {
  segments: AudioSegment[];
}

export interface VideoChunkFile extends ChunkFileBase {
  chunks: VideoChunk[];
}

/** The three chunked arrays, by their manifest key. */
export type ArrayKindName = "screenshots" | "audioSegments" | "videoChunks";

export interface ChunkRecordTypes {
  screenshots: ScreenshotRecord;
  audioSegments: AudioSegment;
  videoChunks: VideoChunk;
}

export interface ChunkFileTypes {
  screenshots: ScreenshotChunkFile;
  audioSegments: AudioSegmentChunkFile;
  videoChunks: VideoChunkFile;
}

// -- metadata.json --------------------------------------------------------------------

export interface ChunkManifestEntry {
  count: number;
  chunkCount: number;
  chunkSize: number;
}

export interface ChunkManifest {
  screenshots: ChunkManifestEntry;
  audioSegments: ChunkManifestEntry;
  videoChunks: ChunkManifestEntry;
}

/**
 * What the layout could not express when a legacy document was split
 * (store/layout.py, LEGACY_KEY); written only when needed.
 */
export interface LegacyRecord {
  /** Arrays that were missing: "screenshots", "audioSegments", "videoChunks". */
  absent?: string[];
  /** Arrays and large objects (legacy field names) that were null. */
  null?: string[];
  /** Original values of the reserved top-level keys. */
  fields?: Record<string, unknown>;
  /** Original top-level positions of keys metadata.json does not hold in place. */
  order?: Record<string, number>;
}

export interface Relationship {
  id: string;
  type: string;
  targetId: string;
  targetType?: string;
  strength?: number;
  createdAt?: IsoTime;
  createdBy?: string;
  metadata?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The app's own metadata fields (identity, lifecycle, configuration, ...). */
export interface SessionFields {
  // identity
  id: string;
  name?: string;
  description?: string;
  // lifecycle
  status?: SessionStatus;
  startTime?: IsoTime;
  endTime?: IsoTime | null;
  lastScreenshotTime?: IsoTime | null;
  pausedAt?: IsoTime | null;
  /** Milliseconds. */
  totalPausedTime?: number;
  // configuration
  screenshotInterval?: number;
  autoAnalysis?: boolean;
  enableScreenshots?: boolean;
  audioMode?: string;
  audioRecording?: boolean;
  videoRecording?: boolean;
  audioConfig?: Record<string, unknown>;
  videoConfig?: Record<string, unknown>;
  // references
  trackingNoteId?: string | null;
  extractedTaskIds?: string[];
  extractedNoteIds?: string[];
  relationships?: Relationship[];
  topicIds?: string[];
  // classification
  tags?: string[];
  category?: string;
  subCategory?: string;
  activityType?: string;
  /** Milliseconds. */
  totalDuration?: number;
  // enrichment
  enrichmentStatus?: Record<string, unknown>;
  enrichmentConfig?: Record<string, unknown>;
  enrichmentLock?: Record<string, unknown> | null;
  // versioning
  /** Optimistic locking. */
  version?: number;
  createdAt?: IsoTime;
  updatedAt?: IsoTime;
  [key: string]: unknown;
}

/** metadata.json: the app's fields, `video` without chunks, and the fields the store maintains. */
export interface SessionMetadata extends SessionFields {
  video?: VideoInfo | null;
  chunks: ChunkManifest;
  hasSummary: boolean;
  hasAudioInsights: boolean;
  hasCanvasSpec: boolean;
  hasTranscription: boolean;
  hasVideo: boolean;
  /** 1 = chunked. */
  storageVersion: number;
  _legacy?: LegacyRecord;
}

/** A whole session as the legacy monolithic document (what loadFullSession returns). */
export interface FullSession extends SessionFields {
  screenshots?: ScreenshotRecord[] | null;
  audioSegments?: AudioSegment[] | null;
  video?: VideoWithChunks | null;
  summary?: Record<string, unknown> | null;
  audioInsights?: Record<string, unknown> | null;
  canvasSpec?: Record<string, unknown> | null;
  fullTranscription?: string | null;
  contextItems?: Record<string, unknown>[] | null;
}

/** What `watch` reports: a chunk file that appeared. */
export interface ChunkFileEvent {
  sessionId: string;
  kind: ArrayKindName;
  /** 0-based, as `chunkIndex` inside the file. */
  index: number;
  /** "chunk-004.json" */
  name: string;
  /** Full path under the mount. */
  path: string;
}
