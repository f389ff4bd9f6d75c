/**
 * The typed errors of the storage API, mirroring store/core/errors.py: a caller
 * can tell bad input (nothing was queued), a version conflict (nothing was
 * queued) and a failed write of the persistence queue apart by `instanceof`.
 */

/** Base of every error SessionStorage raises on purpose. */
export class StorageError extends Error {
  override name = "StorageError";
}

/** The caller's input is unusable (bad id, missing field, not JSON); the message names it. Nothing was queued. */
export class BadInputError extends StorageError {
  override name = "BadInputError";
}

/** saveMetadata's version is not the stored one: another writer got there first. Nothing was queued. */
export class ConflictError extends StorageError {
  override name = "ConflictError";
  constructor(
    message: string,
    readonly sessionId: string,
    readonly storedVersion: number,
    readonly callerVersion: unknown,
  ) {
    super(message);
  }
}

/** A session needed by the call does not exist (no metadata.json). Nothing was queued. */
export class NotFoundError extends StorageError {
  override name = "NotFoundError";
}

/** Writes the persistence queue could not make durable; they stay queued and are retried. */
export class PersistenceError extends StorageError {
  override name = "PersistenceError";
  constructor(
    message: string,
    readonly paths: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
