"""Turn the runner's results into ``report.json``, ``report.md`` and README's Performance section.

Every ratio is sessionfs / baseline for a quantity where lower is better (seconds,
bytes, RSS): 1.00 is parity, 2.00 means sessionfs takes twice the time (or the
space) of the baseline, 0.10 means a tenth. Baselines: ``ext4`` (the same files in
a plain directory: the speed ceiling), ``memfs`` (the same bytes served from
Python dicts through pyfuse3: the Python FUSE ceiling), ``legacy`` (the monolithic
JSON on ext4: the "before"), and the storage peers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MB = 1_000_000

# metrics in the order the report shows them; (key, short name for tables)
ORDER = [
    ("meta_cold", "metadata.json x {n}, fresh mount (cold)"),
    ("meta_warm", "metadata.json x {n} (warm)"),
    ("session_json_cold", "load a whole session, JSON parsed (cold)"),
    ("session_json_warm", "load a whole session, JSON parsed (warm)"),
    ("session_tree_cold", "read a whole session incl. attachments (cold)"),
    ("session_tree_warm", "read a whole session incl. attachments (warm)"),
    ("big_cold", "sequential read, big attachment (cold)"),
    ("big_warm", "sequential read, big attachment (warm)"),
    ("write_closed", "write a session, until last close()"),
    ("write_durable", "write a session, until durable"),
    ("close_p50", "close() of 1 MB, p50"),
    ("close_p99", "close() of 1 MB, p99"),
    ("close_idle_p50", "close() of 1 MB, queue drained first, p50"),
    ("close_ro_p50", "close() of a read-only handle, p50"),
    ("mount_start", "mount start"),
]
CEILINGS = ("ext4", "memfs")
BEFORE = "legacy"
FINAL_STORE = ("sessionfs after compress + `gc --grace 0`", "sessionfs after `sessionfs compress`",
               "sessionfs as ingested (mount, level 3)")


# ---------------------------------------------------------------- formatting
def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}" if n / size < 100 else f"{n / size:.0f} {unit}"
    return f"{int(n)} B"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x" if r >= 0.01 else f"{r:.4f}x"


def fmt_value(v: float | None, unit: str, mb: float | None = None) -> str:
    if v is None:
        return "-"
    if unit == "s":
        text = fmt_time(v)
        if mb and v > 0:
            text += f" ({mb / v:.0f} MB/s)"
        return text
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "ms":
        return f"{v:.2f} ms"
    return f"{v:g}"


def store_final(res: dict) -> tuple[str, dict] | tuple[None, None]:
    systems = res.get("storage", {}).get("systems", {})
    for name in FINAL_STORE:
        if name in systems:
            return name, systems[name]
    return None, None


# ---------------------------------------------------------------- ratios
def ratios(res: dict) -> list[dict]:
    """Every sessionfs/baseline ratio of the run, flat, for the tables, the plots and the JSON."""
    out = []
    n = res.get("corpus", {}).get("mount_store_sessions")

    def add(key, label, kind, baseline, s_val, b_val, unit, ratio=None):
        if s_val is None or not b_val:
            return
        out.append({"id": f"{key}:{baseline}", "metric": key, "label": label, "kind": kind, "baseline": baseline,
                    "sessionfs": s_val, "baseline_value": b_val, "unit": unit,
                    "ratio": ratio if ratio is not None else s_val / b_val})

    for key, short in ORDER:
        m = res.get("metrics", {}).get(key)
        if not m or "sessionfs" not in m["median"]:
            continue
        label = m["label"] if key not in ("meta_cold", "meta_warm") else short.replace("{n}", f"{n:,}")
        for base in (*CEILINGS, BEFORE):
            if base in m["median"]:
                add(key, label, "speed" if base != BEFORE else "before", base, m["median"]["sessionfs"],
                    m["median"][base], "s", (m.get("ratio") or {}).get(base))
    storage = res.get("storage", {})
    name, final = store_final(res)
    if final:
        label = f"bytes stored ({name.replace('sessionfs ', '')})"
        add("stored", label, "storage", "logical (the files)", final["bytes"], storage["logical_bytes"], "bytes")
        for peer, v in storage["systems"].items():
            if not peer.startswith("sessionfs") and not peer.startswith("ext4"):
                add("stored", label, "storage" if not peer.startswith("legacy") else "before", peer,
                    final["bytes"], v["bytes"], "bytes")
        ingest = storage["systems"].get("sessionfs as ingested (mount, level 3)")
        if ingest:
            for peer, v in storage["systems"].items():
                if not peer.startswith(("sessionfs", "legacy")) and v.get("seconds"):
                    add("ingest", "ingest time of the storage tree (until durable)", "speed", peer,
                        ingest["seconds"], v["seconds"], "s")
    rss = res.get("rss", {})
    if rss.get("peak_rss"):
        label = f"daemon peak RSS, {fmt_bytes(rss['ingest_bytes'])} ingest + read-back"
        add("rss", label, "memory", "idle daemon", rss["peak_rss"], rss["idle_rss"], "bytes")
        add("rss", label, "memory", "cache bound (100 MiB)", rss["peak_rss"], rss["cache_bytes"], "bytes")
        legacy = rss.get("legacy_one_session", {})
        add("rss", label, "before", "legacy: one session loaded", rss["peak_rss"], legacy.get("peak_rss"), "bytes")
        add("large_ingest", f"ingest {fmt_bytes(rss['ingest_bytes'])} of attachments, until durable", "speed",
            "ext4", rss["ingest_seconds_durable"], rss["ext4_seconds_durable"], "s")
    pts = res.get("scaling", {}).get("points", [])
    if pts:
        p = pts[-1]
        c = p["sessions"]
        for kind in ("cold", "warm"):
            lst = p["list"].get(f"list_{kind}", {})
            paired = (p.get("list_ratio") or {}).get(f"list_{kind}", {})
            for base in ("ext4", "memfs", "legacy (extrapolated)"):
                add(f"list_{kind}_{c}", f"metadata.json x {c:,}, {'fresh mount (cold)' if kind == 'cold' else 'warm'}",
                    "before" if base.startswith("legacy") else "speed", base, lst.get("sessionfs"), lst.get(base), "s",
                    paired.get(base))
        s = p.get("search") or {}
        if s.get("grep_ms"):
            add("search_p50", f"search p50, {c:,} sessions", "speed", "grep -r (no index)", s["p50_ms"] / 1000,
                s["grep_ms"] / 1000, "s")
            add("search_p95", f"search p95, {c:,} sessions", "speed", "grep -r (no index)", s["p95_ms"] / 1000,
                s["grep_ms"] / 1000, "s")
    return out


def family(metric: str) -> str:
    """close_p50 and close_p99 are one operation, as are the cold and warm runs and the growth listing."""
    f = re.sub(r"_(cold|warm|p50|p95|p99|closed|durable|\d+)$", "", metric)
    f = re.sub(r"_(cold|warm)$", "", f)
    return {"list": "meta", "ingest": "write", "large_ingest": "write"}.get(f, f)


def worst(res: dict, k: int = 3) -> list[dict]:
    """The k largest ratios against a ceiling or a peer, one per operation: where sessionfs is furthest behind.
    Ranked against ext4 (memfs shows how much of that is FUSE and Python)."""
    best: dict[str, dict] = {}
    for r in res.get("ratios", []):
        if r["kind"] not in ("speed", "storage"):
            continue
        if r["baseline"] == "memfs" or r["metric"] in ("mount_start", "close_ro_p50", "close_idle_p50"):
            continue
        fam = family(r["metric"])
        cur = best.get(fam)
        if cur is None or r["ratio"] > cur["ratio"]:
            best[fam] = r
    return sorted(best.values(), key=lambda r: -r["ratio"])[:k]


def _paired(a: list | None, b: list | None) -> float | None:
    pairs = [x / y for x, y in zip(a or [], b or []) if y]
    return sorted(pairs)[len(pairs) // 2] if pairs else None


def limits(res: dict, r: dict) -> str:
    """What limits a ratio: the mechanism, with this run's own numbers (the FUSE floor from memfs, the
    read-only close) and the daemon's hot spots from py-spy."""
    mt = res.get("metrics", {})
    med = lambda key, sys_: (mt.get(key) or {}).get("median", {}).get(sys_)  # noqa: E731
    fam = family(r["metric"])
    cores = res.get("machine", {}).get("cores")
    ro = {s_: med("close_ro_p50", s_) for s_ in ("sessionfs", "memfs", "ext4")}
    text = ""
    micro = res.get("micro") or {}
    if fam == "close":
        idle, busy = med("close_idle_p50", "sessionfs"), med("close_p50", "sessionfs")
        text = (f"close() after writing waits for the FUSE FLUSH round trip (closing a read-only handle, which "
                f"needs no thread: {fmt_time(ro['sessionfs'])} on sessionfs, {fmt_time(ro['memfs'])} on memfs, "
                f"{fmt_time(ro['ext4'])} on ext4) plus the seal: a hop to a trio worker thread and back "
                f"({fmt_time(micro.get('thread_hop_p50'))} p50, {fmt_time(micro.get('thread_hop_p99'))} p99 "
                f"measured alone here) that creates, writes and renames the staged file's marker on ext4 "
                f"({fmt_time(micro.get('marker_p50'))} p50, {fmt_time(micro.get('marker_p99'))} p99 done "
                f"directly) and queues the file")
        if idle and busy:
            text += (f"; with the queue drained before each file close() takes {fmt_time(idle)} (p50) against "
                     f"{fmt_time(busy)} back to back, so " +
                     ("the persistence worker running beside it is not what close() waits for; the rest is "
                      "scheduling: the daemon's event loop and worker thread getting a core on a loaded machine "
                      "(slower still when they were asleep, as in the drained case)" if idle >= 0.8 * busy else
                      "part of it is the persistence worker competing for the cores and the GIL"))
    elif fam == "write" and r["metric"] in ("ingest", "large_ingest"):
        text = ("sessionfs ingests through the mount (every byte a FUSE WRITE handled in a worker thread, then "
                "FastCDC, SHA-256, zstd and a SQLite commit before fsync returns) where the peers read the tree "
                "directly; writing one session through the mount is "
                f"{fmt_ratio((mt.get('write_durable') or {}).get('ratio', {}).get('ext4'))} of ext4 until durable")
    elif fam == "write":
        text = ("every write() becomes FUSE WRITE requests (no kernel write-back cache) handled in a worker "
                "thread that appends to a staging file; each close() adds the seal above; the persistence worker "
                "(FastCDC, SHA-256, zstd -3, SQLite commit) runs at the same time on the same "
                f"{cores} cores, and 'durable' waits for it")
    elif fam in ("meta", "session_json", "session_tree", "big"):
        key = r["metric"] if r["metric"] in mt else "meta_cold"
        smp = (mt.get(key) or {}).get("samples", {})
        mem_ext = _paired(smp.get("memfs"), smp.get("ext4"))
        sfs_mem = ((mt.get(key) or {}).get("ratio") or {}).get("memfs")
        floor = (f"memfs, which only answers from dicts, is already {fmt_ratio(mem_ext)} of ext4, so FUSE "
                 f"round trips and Python dispatch are that much; sessionfs is {fmt_ratio(sfs_mem)} of memfs"
                 if mem_ext and sfs_mem else "")
        warm = r["metric"].endswith("_warm")
        if fam == "big":
            per = ("warm, the reads are served from the kernel page cache when it was kept (keep_cache); what "
                   "is not goes to the daemon as READ requests" if warm else
                   "every READ request is a round trip and a worker-thread hop, and every chunk is read from its "
                   "pack, zstd-decoded and SHA-256-verified in Python threads")
        elif warm:
            per = ("warm, the kernel keeps names, attributes (60 s) and pages (keep_cache), but every open() "
                   "still costs an OPEN round trip in which sessionfs reads the inode from SQLite in a worker "
                   "thread (memfs answers from a dict), and close() a FLUSH")
        else:
            per = ("each file costs LOOKUP, OPEN, READ and FLUSH round trips; sessionfs hops to a worker thread "
                   "for the SQLite lookups (entry, inode, chunk list) and, cold, reads the block from its pack, "
                   "zstd-decodes it and checks its SHA-256")
        text = "; ".join(t for t in (per, floor) if t)
    elif fam == "stored":
        text = "dedup across sessions, 1 MiB blocks and level 19 with a trained dictionary after `sessionfs compress`"
    profiles = res.get("profile") or {}
    pkey = r["metric"] if r["metric"] in profiles else {
        "close": "close_p50", "write": "write_durable", "meta": "meta_cold", "big": "big_cold",
        "session_json": "session_json_cold", "session_tree": "session_tree_cold"}.get(fam, "")
    prof = profiles.get(pkey)
    if prof and prof.get("own"):
        what = (mt.get(pkey) or {}).get("label", pkey)
        text += (f"; py-spy on the daemon during \"{what}\" (busy samples, charged to the innermost sessionfs "
                 "function): " + ", ".join(f"{x['frame']} {x['share']:.0%}" for x in prof["own"][:5]))
    return text


# ---------------------------------------------------------------- markdown
def _table(head: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


SHORT_SKIP = ("session_json_warm", "session_tree_warm", "close_idle_p50", "close_ro_p50", "mount_start")


def ratio_table(res: dict, short_form: bool = False) -> str:
    """The headline table: one row per mount metric, sessionfs and its baselines, and the ratios
    (``short_form``: without the secondary rows, for README)."""
    rows = []
    n = res.get("corpus", {}).get("mount_store_sessions")
    for key, short in ORDER:
        if short_form and key in SHORT_SKIP:
            continue
        m = res.get("metrics", {}).get(key)
        if not m or "sessionfs" not in m["median"]:
            continue
        med = m["median"]
        s = med["sessionfs"]
        label = short.replace("{n}", f"{n:,}") if n else short
        if key.startswith("big"):
            label = label.replace("big attachment", f"{res['config']['big_mb']} MB attachment")
        paired = m.get("ratio") or {}
        r = lambda b: fmt_ratio(paired.get(b, s / med[b] if med.get(b) else None)) if med.get(b) else "-"  # noqa: E731
        rows.append([label, fmt_value(s, "s", m.get("mb")), fmt_value(med.get("ext4"), "s", m.get("mb")),
                     fmt_value(med.get("memfs"), "s", m.get("mb")), fmt_value(med.get("legacy"), "s"),
                     r("ext4"), r("memfs"), r("legacy")])
    name, final = store_final(res)
    st = res.get("storage", {})
    if final:
        sysd = st["systems"]
        z19 = sysd.get("zstd -19 per file", {}).get("bytes")
        rows.append(["bytes stored (after compress + gc) / zstd -19 per file", fmt_bytes(final["bytes"]),
                     fmt_bytes(st["logical_bytes"]) + " (files)", "-",
                     fmt_bytes(sysd.get("legacy monolithic JSON + attachments", {}).get("bytes")),
                     fmt_ratio(final["bytes"] / st["logical_bytes"]), "-",
                     fmt_ratio(final["bytes"] / sysd["legacy monolithic JSON + attachments"]["bytes"])
                     if "legacy monolithic JSON + attachments" in sysd else "-"])
        if z19:
            rows[-1][0] = "bytes stored after compress + gc"
    pts = res.get("scaling", {}).get("points", [])
    if pts and pts[-1].get("search", {}).get("p50_ms"):
        s = pts[-1]["search"]
        rows.append([f"search p50 / p95, {pts[-1]['sessions']:,} sessions",
                     f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f} ms", f"{s['grep_ms']:.0f} ms (grep -r)", "-", "-",
                     f"{fmt_ratio(s['p50_ms'] / s['grep_ms'])} / {fmt_ratio(s['p95_ms'] / s['grep_ms'])}", "-", "-"])
    rss = res.get("rss", {})
    if rss.get("peak_rss"):
        leg = rss.get("legacy_one_session", {}).get("peak_rss")
        rows.append([f"daemon peak RSS, {fmt_bytes(rss['ingest_bytes'])} ingest + read-back",
                     fmt_bytes(rss["peak_rss"]), "-", "-", fmt_bytes(leg) + " (one session)" if leg else "-",
                     "-", "-", fmt_ratio(rss["peak_rss"] / leg) if leg else "-"])
    return _table(["", "sessionfs", "ext4", "memfs", "before (legacy)", "/ext4", "/memfs", "/before"], rows)


def _machine(res: dict) -> str:
    m = res["machine"]
    v = m.get("versions", {})
    t = m.get("tools", {})
    rows = [["CPU", f"{m['cpu']}, {m['cores']} cores"],
            ["memory", fmt_bytes(m.get("memory_bytes"))],
            ["OS / kernel", f"{m.get('os')} / {m['kernel']}"],
            ["Python", m["python"]],
            ["sessionfs", f"commit {m['commit']} (plus uncommitted work in the tree)" if m.get("commit") else "-"],
            ["pyfuse3 / zstandard / pyfastcdc", f"{v.get('pyfuse3')} / {v.get('zstandard')} / {v.get('pyfastcdc')}"],
            ["trio / orjson / matplotlib", f"{v.get('trio')} / {v.get('orjson')} / {v.get('matplotlib')}"],
            ["zstd / borg / restic", f"{t.get('zstd') or '-'} / {t.get('borg') or '-'} / {t.get('restic') or '-'}"],
            ["fusermount3", t.get("fusermount3") or "-"],
            ["work directory on", m.get("work_filesystem") or "-"],
            ["load average (1/5/15 min)", f"{_la(m.get('load_average_start'))} at the start, "
                                          f"{_la(m.get('load_average_end'))} at the end"]]
    ls = m.get("load_samples")
    if ls:
        srt = sorted(ls)
        rows.append(["1-min load average during the run", f"min {srt[0]:.1f}, median {srt[len(srt) // 2]:.1f}, "
                                                           f"max {srt[-1]:.1f} ({len(ls)} samples; other "
                                                           f"engineers' jobs share the {m['cores']} cores)"])
    return _table(["", ""], [[f"**{a}**", b] for a, b in rows], "ll")


def _la(x) -> str:
    return " / ".join(f"{v:.2f}" for v in x) if x else "-"


def _storage(res: dict) -> str:
    st = res.get("storage", {})
    if not st.get("systems"):
        return "_not measured_"
    logical = st["logical_bytes"]
    _, final = store_final(res)
    rows = []
    for name, v in sorted(st["systems"].items(), key=lambda kv: -kv[1]["bytes"]):
        secs = v.get("seconds")
        rows.append([name, fmt_bytes(v["bytes"]), f"{v['bytes'] / logical:.3f}",
                     fmt_ratio(final["bytes"] / v["bytes"]) if final else "-",
                     fmt_time(secs) if secs else "-", f"{logical / secs / MB:.1f}" if secs else "-"])
    text = (f"Tree: {st['tree']}, {fmt_bytes(logical)} of files. Bytes are what each system keeps on disk "
            "(sessionfs: pack bytes + trained dictionaries; its catalog is listed below; borg and restic: the "
            "whole repository directory; JuiceFS: its bucket plus its metadata database). Ingest: until durable; sessionfs through the mount (copy every file "
            "in, then fsync). " + (f"Ingest times are single runs." if st.get("repeats", 1) == 1 else
                                   f"Ingest times: median of {st['repeats']} runs.") + "\n\n")
    text += _table(["system", "bytes", "/ logical", "sessionfs / this", "ingest / step", "MB/s"], rows)
    for name in FINAL_STORE:
        v = st["systems"].get(name)
        if v:
            text += (f"\n\nsessionfs final store: packs {fmt_bytes(v['pack_bytes'])} + dictionaries "
                     f"{fmt_bytes(v['dictionary_bytes'])}; catalog.db {fmt_bytes(v['catalog_bytes'])} "
                     f"(inodes, chunk lists, search index); whole directory {fmt_bytes(v['directory_bytes'])} "
                     f"({v['directory_bytes'] / logical:.3f} of logical). Compression: "
                     f"{st.get('compressed_with', '-')}.")
            break
    return text


def _rss(res: dict) -> str:
    r = res.get("rss", {})
    if not r.get("peak_rss"):
        return "_not measured_"
    leg = r.get("legacy_one_session", {})
    mbps = lambda b, s: f"{b / s / MB:.0f} MB/s" if s else "-"  # noqa: E731
    rows = [["idle, just mounted", fmt_bytes(r["idle_rss"])],
            ["peak during the ingest (VmHWM)", fmt_bytes(r["peak_rss_ingest"])],
            ["peak including the read-back of everything", fmt_bytes(r["peak_rss"])],
            ["decoded-block cache bound", fmt_bytes(r["cache_bytes"])],
            ["ingest until last close / durable", f"{fmt_time(r['ingest_seconds_until_closed'])} / "
                                                  f"{fmt_time(r['ingest_seconds_durable'])} "
                                                  f"({mbps(r['ingest_bytes'], r['ingest_seconds_durable'])})"],
            ["same bytes to ext4, until durable", f"{fmt_time(r['ext4_seconds_durable'])} "
                                                  f"({mbps(r['ingest_bytes'], r['ext4_seconds_durable'])})"],
            ["read-back through the mount (cold)", f"{fmt_time(r['read_back_seconds'])} "
                                                   f"({mbps(r['ingest_bytes'], r['read_back_seconds'])})"]]
    if leg:
        rows.append(["before: a process that json.loads one legacy session (peak RSS; of which the session)",
                     f"{fmt_bytes(leg['peak_rss'])} ({fmt_bytes(leg['session_rss'])})"])
    for k in ("daemon_after_reads", "daemon_after_writes"):
        if r.get(k):
            rows.append([f"mount-bench daemon, {k.split('_')[-1]} (RSS / peak)",
                         f"{fmt_bytes(r[k].get('VmRSS'))} / {fmt_bytes(r[k].get('VmHWM'))}"])
    return (f"{fmt_bytes(r['ingest_bytes'])} written through a fresh mount with the default cache, as "
            f"{r['files']} files of {fmt_bytes(r['file_bytes'])} ({r['data']}), then fsync, drop_caches and a "
            "sequential read of all of it.\n\n" + _table(["", ""], rows, "lr"))


def _scaling(res: dict) -> str:
    sc = res.get("scaling", {})
    pts = sc.get("points", [])
    if not pts:
        return "_not measured_"
    rows = []
    for p in pts:
        lc, lw = p["list"].get("list_cold", {}), p["list"].get("list_warm", {})
        s = p.get("search") or {}
        rows.append([f"{p['sessions']:,}", f"{p['sessions_per_second']:.0f}",
                     fmt_time(lc.get("sessionfs")), fmt_time(lc.get("ext4")), fmt_time(lc.get("memfs")),
                     fmt_time(lc.get("legacy (extrapolated)")), fmt_time(lw.get("sessionfs")), fmt_time(lw.get("ext4")),
                     f"{s['p50_ms']:.1f} / {s['p95_ms']:.1f}" if s.get("p50_ms") is not None else "-",
                     f"{s['grep_ms']:.0f}" if s.get("grep_ms") else "-",
                     f"{p['stored_bytes'] / p['logical_bytes']:.3f}" if p["logical_bytes"] else "-",
                     fmt_bytes(p["catalog_bytes"]),
                     fmt_bytes((p.get("daemon_rss_after_list") or {}).get("VmHWM"))])
    text = (f"Sessions of profile {sc['profile']} (~{pts[-1]['logical_bytes'] / pts[-1]['sessions'] / 1000:.0f} KB "
            f"of JSON each), ingested through the Store API; listing = read and parse every metadata.json "
            f"(median of {sc['repeats']}; cold = fresh mount + drop_caches). Search: the median of the "
            "query kinds' p50 and the worst kind's p95 (rare word, common word, two words, phrase); grep: "
            "`grep -rliF word` over the plain tree, warm. Legacy: extrapolated from the per-file parse time of "
            "real-size legacy files.\n\n")
    if sc.get("stopped"):
        st = sc["stopped"]
        text += (f"**Stopped at {st['at']:,} sessions:** {st['skipped']:,} was projected to take "
                 f"{st['projected_s'] / 60:.1f} more minutes after {st['elapsed_s'] / 60:.1f}, past the run's "
                 f"time budget on this machine; `python -m contrib.bench --sessions {st['skipped']}` measures it.\n\n")
    return text + _table(["sessions", "ingest sess/s", "list cold", "ext4 cold", "memfs cold", "legacy",
                          "list warm", "ext4 warm", "search p50/p95 ms", "grep ms", "stored/logical",
                          "catalog", "daemon peak RSS"], rows)


def _profile(res: dict) -> str:
    prof = res.get("profile") or {}
    if not prof:
        return "_not profiled (py-spy missing, --quick or --no-profile)_"
    parts = []
    for key, p in prof.items():
        label = res.get("metrics", {}).get(key, {}).get("label", key)
        selfs = ", ".join(f"{x['frame']} {x['share']:.0%}" for x in p["self"][:6])
        own = ", ".join(f"{x['frame']} {x['share']:.0%}" for x in p["own"][:6])
        parts.append(f"- **{label}** ({p['samples']} busy samples, {p.get('idle_samples', 0)} idle left out): "
                     f"by sessionfs function: {own or '-'}.  \n  innermost frames: {selfs}.")
    return ("py-spy (`record --nonblocking -r 250`) on the daemon while the operation ran again on a fresh mount "
            "after drop_caches (cold reads: up to 4 such runs, about 2 s of work, merged); shares of the busy samples (threads waiting in epoll, idle workers and condition waits "
            "left out). \"By sessionfs function\": each sample charged to the innermost function of store/ or "
            "fusefs/ on its stack (the time it spent itself and in the libraries it called: sqlite3, zstandard, "
            "hashlib, os); `[lib]`: samples with no sessionfs frame (trio and pyfuse3 dispatching requests). "
            "Time the kernel spends on FUSE round trips does not show here.\n\n" + "\n".join(parts))


def _worst(res: dict) -> str:
    items = worst(res)
    if not items:
        return "_no ratios_"
    lines = []
    for i, r in enumerate(items, 1):
        line = (f"{i}. **{r['label']}**: {fmt_ratio(r['ratio'])} of {r['baseline']} "
                f"({fmt_value(r['sessionfs'], r['unit'])} vs {fmt_value(r['baseline_value'], r['unit'])})")
        why = limits(res, r)
        if why:
            line += f". Limited by: {why}"
        lines.append(line + ".")
    return "\n".join(lines)


def _headline(res: dict) -> str:
    out = []
    mt = res.get("metrics", {})
    n = res.get("corpus", {}).get("mount_store_sessions")

    def line(key, text):
        m = mt.get(key)
        if m and m["median"].get("sessionfs") is not None:
            out.append(text(m["median"], m))
    line("meta_cold", lambda d, m: f"- metadata.json of {n:,} sessions on a fresh mount: **{fmt_time(d['sessionfs'])}** "
         f"(ext4 {fmt_time(d.get('ext4'))}, memfs {fmt_time(d.get('memfs'))}; the legacy files parsed for their names: "
         f"{fmt_time(d.get('legacy'))}, {d['legacy'] / d['sessionfs']:.0f}x slower)" if d.get("legacy") else
         f"- metadata.json of {n:,} sessions on a fresh mount: **{fmt_time(d['sessionfs'])}**")
    line("session_json_cold", lambda d, m: f"- one whole session, every JSON file parsed: **{fmt_time(d['sessionfs'])}** "
         f"cold, {fmt_time(mt['session_json_warm']['median']['sessionfs'])} warm (legacy json.loads: "
         f"{fmt_time(d.get('legacy'))} cold)")
    line("big_cold", lambda d, m: f"- {res['config']['big_mb']} MB attachment: **{m['mb'] / d['sessionfs']:.0f} MB/s** "
         f"cold, {m['mb'] / mt['big_warm']['median']['sessionfs']:.0f} MB/s warm "
         f"(ext4 {m['mb'] / d['ext4']:.0f} / {m['mb'] / mt['big_warm']['median']['ext4']:.0f} MB/s)")
    line("write_durable", lambda d, m: f"- writing a session through the mount: **{m['mb'] / d['sessionfs']:.0f} MB/s** "
         f"until durable ({m['mb'] / mt['write_closed']['median']['sessionfs']:.0f} MB/s until the last close; "
         f"ext4 {m['mb'] / d['ext4']:.0f} MB/s with fsync)")
    line("close_p50", lambda d, m: f"- close() of a 1 MB file: p50 **{fmt_time(d['sessionfs'])}**, p99 "
         f"{fmt_time(mt['close_p99']['median']['sessionfs'])} (ext4 {fmt_time(d.get('ext4'))} / "
         f"{fmt_time(mt['close_p99']['median'].get('ext4'))})")
    name, final = store_final(res)
    st = res.get("storage", {})
    if final:
        sysd = st["systems"]
        peers = ", ".join(f"{k} {v['bytes'] / st['logical_bytes']:.3f}" for k, v in sysd.items()
                          if not k.startswith(("sessionfs", "ext4")))
        out.append(f"- stored / logical bytes: **{final['bytes'] / st['logical_bytes']:.3f}** ({name}); {peers}")
    pts = res.get("scaling", {}).get("points", [])
    if pts and pts[-1].get("search", {}).get("p50_ms") is not None:
        s = pts[-1]["search"]
        out.append(f"- search over {pts[-1]['sessions']:,} sessions: p50 **{s['p50_ms']:.1f} ms**, p95 "
                   f"**{s['p95_ms']:.1f} ms**" + (f" (grep -r: {s['grep_ms']:.0f} ms)" if s.get("grep_ms") else ""))
    r = res.get("rss", {})
    if r.get("peak_rss"):
        out.append(f"- daemon RSS through a {fmt_bytes(r['ingest_bytes'])} ingest and read-back: peak "
                   f"**{fmt_bytes(r['peak_rss'])}** (idle {fmt_bytes(r['idle_rss'])}, cache bound "
                   f"{fmt_bytes(r['cache_bytes'])})")
    return "\n".join(out) or "_no numbers_"


def markdown(res: dict, plots: dict | None = None, media: str = "") -> str:
    plots = plots or res.get("plots", {})
    c = res.get("corpus", {})
    cfg = res["config"]
    quick = " --quick" if res.get("quick") else ""
    head = [f"# sessionfs benchmark report{' (--quick)' if res.get('quick') else ''}", "",
            f"Generated by `python -m contrib.bench{quick} --out bench/` on {res.get('finished', '?')} in "
            f"{res.get('seconds', 0) / 60:.1f} minutes. Every figure is the median of repeated runs "
            f"({cfg['repeats']} for the mount, {cfg['scale_repeats']} for growth, {cfg['storage_repeats']} for "
            "storage ingest) and each ratio is sessionfs / baseline on the same corpus, lower is better (2.00x = "
            "twice the time or space); for timings it is the median over repeats of the ratio within a repeat, "
            "where sessionfs and its baselines run back to back, so that load from other jobs on the machine "
            "(see the load average below) hits both sides alike. Baselines: **ext4** = the same chunked files "
            "in a plain directory (speed ceiling); **memfs** = the same bytes served from Python dicts by a "
            "minimal pyfuse3 filesystem with the same trio setup (`contrib/bench/memfs.py`: the Python FUSE "
            "ceiling); **legacy** = the monolithic session JSON on ext4 (the \"before\").", ""]
    if res.get("errors"):
        head += ["**Sections that failed:** " + "; ".join(f"{k}: {v}" for k, v in res["errors"].items()), ""]
    body = ["## Machine", "", _machine(res), "",
            "## Headline", "", _headline(res), "",
            "## Ratios", "", ratio_table(res), ""]
    if plots.get("ratios"):
        body += [f"![ratios]({plots['ratios']})", ""]
    body += ["## The three worst ratios and what limits them", "", _worst(res), "",
             "## Storage: bytes stored and ingest time", "", _storage(res), ""]
    if plots.get("storage"):
        body += [f"![storage]({plots['storage']})", ""]
    body += ["## Memory: daemon RSS during a large ingest", "", _rss(res), ""]
    if plots.get("rss"):
        body += [f"![rss]({plots['rss']})", ""]
    body += ["## Growth: 100 to many sessions", "", _scaling(res), ""]
    if plots.get("scaling"):
        body += [f"![scaling]({plots['scaling']})", ""]
    body += ["## Where the daemon spends its time (py-spy)", "", _profile(res), ""]
    if media:
        body += [media]
    corpus = (f"- Corpus (seed {c.get('seed')}, `contrib.corpus.generate_session`): {c.get('full_sessions')} "
              f"sessions of profile `{c.get('full_profile')}` ({fmt_bytes(c.get('full_json_bytes'))} of JSON + "
              f"{fmt_bytes(c.get('full_attachment_bytes'))} of PNG/WAV attachments, {c.get('full_files')} files), "
              f"{c.get('lite_sessions', 0):,} sessions of profile {c.get('lite_profile')} beside them in the mount "
              f"store ({c.get('mount_store_sessions', 0):,} sessions), one {cfg['big_mb']} MB incompressible "
              f"attachment, and {c.get('legacy_list_files')} legacy files of profile json-only for the legacy "
              f"listing. Generated in {c.get('seconds')} s.")
    method = ["## Method and notes", "", corpus,
              "- Cold: the sessionfs mount is restarted (empty daemon cache) and, for every system, "
              "`echo 3 > /proc/sys/vm/drop_caches` runs first; memfs is restarted too (its bytes stay in "
              "its own memory, the kernel's page cache is dropped). Warm: the same operation right after.",
              "- Loading a session: every JSON file of the session directory read and parsed with the stdlib "
              "`json.loads` (legacy: the monolithic file, the same way).",
              "- Writes go through the mount with plain `open/write/close`; durable = one fsync of the "
              "sessions directory on the mount (sessionfs commits everything queued), fsync of every file and "
              "directory on ext4.",
              "- Measuring functions borrowed: " + "; ".join(f"`{k}` from {v}" for k, v in
                                                            sorted(res.get("borrowed", {}).items())) + ".",
              "- Section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in res.get("sections", {}).items()) + "."]
    for n in res.get("notes", []):
        method.append(f"- {n}")
    return "\n".join(head + body + method) + "\n"


#: Results of ``contrib.bench.media_bench --json`` beside report.json: their section is rendered too.
MEDIA_RESULTS = "media.json"
#: Results kept beside report.json by other benchmarks' ``--json``, and the module rendering each
#: one's section (``section(data)``), in the report's order.
GENERATED = ((MEDIA_RESULTS, "contrib.bench.media_bench"), ("audio.json", "contrib.bench.audio_bench"),
             ("scaleout.json", "contrib.bench.scaleout_bench"))


def generated_section(out: Path, results: str, module: str) -> str:
    """The section ``module`` renders from ``out/results`` ('' when that benchmark was never run)."""
    path = Path(out) / results
    if not path.exists():
        return ""
    import importlib
    return importlib.import_module(module).section(json.loads(path.read_text())) + "\n"


def media_section(out: Path) -> str:
    """The storage-by-media-kind section from ``out/MEDIA_RESULTS`` ('' when it was never run)."""
    return generated_section(out, *GENERATED[0])


def write(res: dict, out: Path) -> None:
    out = Path(out)
    (out / "report.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    (out / "report.md").write_text(markdown(res, media="".join(generated_section(out, *g) for g in GENERATED)))


# ---------------------------------------------------------------- README
README_HEADING = "## Performance"


def readme_section(res: dict, out: Path, readme: Path) -> str:
    rel = lambda p: Path(p).as_posix()  # noqa: E731
    try:
        prefix = Path(out).resolve().relative_to(readme.parent.resolve()).as_posix()
    except ValueError:
        prefix = str(out)
    plot = (res.get("plots") or {}).get("ratios")
    ls = sorted(res["machine"].get("load_samples") or res["machine"].get("load_average_start", [0])[:1])
    lines = [README_HEADING, "",
             f"Measured by one command on {res['machine']['cores']} cores ({res['machine']['cpu']}; 1-minute load "
             f"average {ls[len(ls) // 2]:.1f} from other jobs during the run), every figure the median of repeated "
             f"runs and each ratio sessionfs / baseline measured in the same run on the same generated corpus "
             f"(lower is better). ext4 = the same files in a plain directory (the ceiling), memfs = a minimal "
             f"in-memory pyfuse3 filesystem (the Python FUSE ceiling), before = the legacy monolithic JSON. The "
             f"full report, with storage peers (zstd, borg, restic), growth to {_max_sessions(res)} sessions, "
             f"memory and the daemon's hot spots: [{prefix}/report.md]({prefix}/report.md).",
             "", ratio_table(res, short_form=True), ""]
    if plot:
        lines += [f"![sessionfs / baseline]({prefix}/{rel(plot)})", ""]
    lines += ["Regenerate the report, the plots and this section (as root, for drop_caches and to apt-get the "
              "peers; under 20 minutes on 2 cores, `--quick` in under 2):", "", "```sh",
              ".venv/bin/pip install -e '.[bench]' && .venv/bin/python -m contrib.bench --out bench/ --update-readme",
              "```", ""]
    return "\n".join(lines)


def _max_sessions(res: dict) -> str:
    pts = res.get("scaling", {}).get("points") or []
    return f"{pts[-1]['sessions']:,}" if pts else "-"


def update_readme(res: dict, readme: Path, out: Path) -> None:
    """Replace README's Performance section (up to the next '## ' heading) or append it at the end."""
    text = readme.read_text()
    section = readme_section(res, out, readme)
    m = re.search(r"^## Performance\n.*?(?=^## |\Z)", text, flags=re.M | re.S)
    if m:
        text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)
