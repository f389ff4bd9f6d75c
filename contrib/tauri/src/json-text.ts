/**
 * The bytes SessionStore writes for a JSON value, produced in JavaScript:
 * orjson with OPT_INDENT_2 | OPT_APPEND_NEWLINE (store/services/session_files.py
 * dump_json). A file saved through the TypeScript API is then byte-identical to
 * the same save through the Python API, so the store deduplicates the two and a
 * diff of the trees is empty.
 *
 * Where JSON.stringify differs from orjson, this follows orjson: numbers in
 * [1e-6, 1e-5) are written "1.5e-6" (not "0.0000015"), integral numbers from
 * 1e16 up "1e+16" (orjson's float form: above 2^53 a JavaScript number is no
 * exact integer); a string that is not well-formed UTF-16 (a lone surrogate)
 * is refused, as orjson refuses it. Below 1e16 an integral number is written as
 * an integer: JavaScript has no int/float distinction, so the app's 2 is
 * Python's 2, never 2.0.
 */

import { BadInputError } from "./errors.js";

const INDENT = "  ";

/** The value is not JSON that orjson would write; the message names the file and the place. */
export class JsonValueError extends BadInputError {
  override name = "JsonValueError";
}

function wellFormed(text: string): boolean {
  const native = (text as { isWellFormed?: () => boolean }).isWellFormed;
  if (native !== undefined) return native.call(text);
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

/** A finite number as orjson writes it (integers as integers). */
export function numberText(value: number): string {
  if (!Number.isFinite(value)) return "null";
  if (Number.isInteger(value) && Math.abs(value) >= 1e16) return value.toExponential();
  const text = String(value);
  const small = /^(-?)0\.00000([1-9])(\d*)$/.exec(text);
  if (small === null) return text === "-0" ? "0" : text;
  return `${small[1]}${small[2]}${small[3] ? "." + small[3] : ""}e-6`;
}

function stringText(value: string, where: () => string): string {
  if (!wellFormed(value)) throw new JsonValueError(`${where()}: str is not valid UTF-8: surrogates not allowed`);
  return JSON.stringify(value);
}

interface Walk {
  path: string;
  stack: Set<object>;
}

function place(walk: Walk, trail: (string | number)[]): string {
  let out = "";
  for (const part of trail) out += typeof part === "number" ? `[${part}]` : out ? `.${part}` : part;
  return out ? `${walk.path}: ${out}` : walk.path;
}

function write(value: unknown, depth: number, walk: Walk, trail: (string | number)[], out: string[]): boolean {
  if (value !== null && typeof value === "object" && typeof (value as { toJSON?: unknown }).toJSON === "function") {
    value = (value as { toJSON: (key: string) => unknown }).toJSON(String(trail[trail.length - 1] ?? ""));
  }
  switch (typeof value) {
    case "string":
      out.push(stringText(value, () => place(walk, trail)));
      return true;
    case "number":
      out.push(numberText(value));
      return true;
    case "boolean":
      out.push(value ? "true" : "false");
      return true;
    case "bigint":
      throw new JsonValueError(`${place(walk, trail)}: a bigint is not a JSON value`);
    case "undefined":
    case "function":
    case "symbol":
      return false;
  }
  if (value === null) {
    out.push("null");
    return true;
  }
  const obj = value as object;
  if (walk.stack.has(obj)) throw new JsonValueError(`${place(walk, trail)}: a circular reference is not JSON`);
  walk.stack.add(obj);
  const inner = "\n" + INDENT.repeat(depth + 1);
  if (Array.isArray(obj)) {
    if (obj.length === 0) out.push("[]");
    else {
      out.push("[");
      for (let i = 0; i < obj.length; i++) {
        out.push(i === 0 ? inner : "," + inner);
        trail.push(i);
        if (!write(obj[i], depth + 1, walk, trail, out)) out.push("null");
        trail.pop();
      }
      out.push("\n" + INDENT.repeat(depth) + "]");
    }
  } else {
    const start = out.length;
    out.push("{");
    let first = true;
    for (const key of Object.keys(obj)) {
      const mark = out.length;
      out.push((first ? inner : "," + inner) + stringText(key, () => place(walk, trail)) + ": ");
      trail.push(key);
      const written = write((obj as Record<string, unknown>)[key], depth + 1, walk, trail, out);
      trail.pop();
      if (written) first = false;
      else out.length = mark;
    }
    if (first) {
      out.length = start;
      out.push("{}");
    } else out.push("\n" + INDENT.repeat(depth) + "}");
  }
  walk.stack.delete(obj);
  return true;
}

/**
 * `value` as the text of a session file (2-space indent, final newline), or a
 * JsonValueError naming `path` and the offending place.
 */
export function jsonText(value: unknown, path: string): string {
  const out: string[] = [];
  if (!write(value, 0, { path, stack: new Set() }, [], out)) {
    throw new JsonValueError(`${path}: ${typeof value} is not a JSON value`);
  }
  out.push("\n");
  return out.join("");
}
