/**
 * Checks of what the app hands to SessionStorage, done before anything is
 * queued so that a bad call writes nothing: array kinds, records (an object
 * with an id; every attachmentId a plain file name), large-object fields.
 */

import { BadInputError } from "./errors.js";
import { ARRAY_KINDS, LARGE_OBJECTS, checkComponent, hasOwn, isObject, typeName, type ArrayKind } from "./layout.js";
import type { ArrayKindName } from "./types.js";

export function arrayKind(kind: ArrayKindName): ArrayKind {
  if (typeof kind !== "string" || !hasOwn(ARRAY_KINDS, kind)) {
    throw new BadInputError(`array kind: unknown ${JSON.stringify(kind)}; one of ${Object.keys(ARRAY_KINDS).join(", ")}`);
  }
  return ARRAY_KINDS[kind];
}

/** The file name of a large object by its legacy field name ("summary" -> "summary.json"). */
export function largeObjectFile(field: string): string {
  if (typeof field !== "string" || !hasOwn(LARGE_OBJECTS, field)) {
    throw new BadInputError(`large object: unknown field ${JSON.stringify(field)}; one of ${Object.keys(LARGE_OBJECTS).join(", ")}`);
  }
  return LARGE_OBJECTS[field]!;
}

function checkAttachmentIds(value: unknown, where: string): void {
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkAttachmentIds(item, `${where}[${i}]`));
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (key === "attachmentId" && child !== null && child !== undefined) {
        try {
          checkComponent(child, `${where}.attachmentId`);
        } catch (error) {
          throw new BadInputError(`${(error as Error).message} (an attachment id must be a plain file name)`);
        }
      } else checkAttachmentIds(child, `${where}.${key}`);
    }
  }
}

/** `record` if it is an object with a non-empty string `id` and usable attachment ids; `where` names it. */
export function checkRecord(record: unknown, where: string): Record<string, unknown> {
  if (!isObject(record)) throw new BadInputError(`${where}: expected a dict, got ${typeName(record)}`);
  if (typeof record.id !== "string" || record.id === "") {
    throw new BadInputError(`${where}: id: expected a non-empty str, got ${hasOwn(record, "id") ? JSON.stringify(record.id) : "none"}`);
  }
  checkAttachmentIds(record, where);
  return record;
}
