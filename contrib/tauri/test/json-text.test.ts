/**
 * jsonText writes what orjson writes (OPT_INDENT_2 | OPT_APPEND_NEWLINE); the
 * expected text below is orjson's output for the same values. Pure: no mount.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { BadInputError } from "../src/errors.js";
import { JsonValueError, jsonText } from "../src/json-text.js";

test("jsonText equals orjson's indented output: numbers, escapes, empty containers, __proto__", () => {
  const value = JSON.parse(
    '{"a": [1, 2.5, 1e-6, 1.5e-5, 1e-7, 1e16, 1e300, 5e-324, -0.5, 0.1, 12345678901234],' +
      ' "s": "\\u00e9 \\ud83d\\udc1b \\u2028 \\u0000\\u001f\\u007f \\"q\\" \\\\ /\\b\\f\\n\\r\\t",' +
      ' "e": {"l": [], "d": {}}, "n": null, "t": true, "f": false, "__proto__": {"x": 1}}',
  );
  const orjson =
    '{\n  "a": [\n    1,\n    2.5,\n    1e-6,\n    0.000015,\n    1e-7,\n    1e+16,\n    1e+300,\n    5e-324,\n' +
    '    -0.5,\n    0.1,\n    12345678901234\n  ],\n' +
    '  "s": "\u00e9 \ud83d\udc1b \u2028 \\u0000\\u001f\u007f \\"q\\" \\\\ /\\b\\f\\n\\r\\t",\n' +
    '  "e": {\n    "l": [],\n    "d": {}\n  },\n  "n": null,\n  "t": true,\n  "f": false,\n' +
    '  "__proto__": {\n    "x": 1\n  }\n}\n';
  assert.equal(jsonText(value, "x.json"), orjson);
});

test("jsonText refuses what orjson refuses, naming the file and the place", () => {
  const cases: [unknown, RegExp][] = [
    [{ a: [{ b: "\ud800" }] }, /^f\.json: a\[0\]\.b: str is not valid UTF-8/],
    [{ big: 1n }, /^f\.json: big: a bigint/],
    [undefined, /^f\.json: undefined is not a JSON value/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => jsonText(value, "f.json"), (e: unknown) => e instanceof JsonValueError && e instanceof BadInputError && message.test((e as Error).message));
  }
  const loop: Record<string, unknown> = {};
  loop.self = loop;
  assert.throws(() => jsonText(loop, "f.json"), /circular/);
});
