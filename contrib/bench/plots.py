"""PNG plots of a benchmark run (matplotlib, Agg backend); small files, relative names.

``make_all(results, out)`` returns {"ratios": "ratios.png", ...} for the plots it
could draw; without matplotlib it returns {} and the report says so.
"""

from __future__ import annotations

from pathlib import Path

from .report import ORDER, fmt_bytes

DPI = 80
COLORS = {"ext4": "#4c72b0", "memfs": "#55a868", "legacy": "#c44e52", "sessionfs": "#dd8452",
          "legacy (extrapolated)": "#c44e52"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": DPI})
    return plt


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name


def ratios_plot(res: dict, out: Path) -> str | None:
    """Horizontal bars: sessionfs time / ext4 and / memfs for every mount metric (log scale)."""
    plt = _plt()
    mt = res.get("metrics", {})
    n = res.get("corpus", {}).get("mount_store_sessions") or 0
    rows = []
    for key, short in ORDER:
        m = mt.get(key)
        if not m or "sessionfs" not in m["median"]:
            continue
        med = m["median"]
        paired = m.get("ratio") or {}
        rows.append((short.replace("{n}", f"{n:,}").replace("big attachment", f"{res['config']['big_mb']} MB"),
                     {b: paired.get(b, med["sessionfs"] / med[b]) for b in ("ext4", "memfs", "legacy") if med.get(b)}))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.2))
    h = 0.27
    for i, base in enumerate(("ext4", "memfs", "legacy")):
        ys = [j + (i - 1) * h for j, (_, r) in enumerate(rows) if base in r]
        xs = [r[base] for _, r in rows if base in r]
        if xs:
            label = {"ext4": "/ ext4 (plain dir)", "memfs": "/ memfs (Python FUSE ceiling)",
                     "legacy": "/ legacy JSON (before)"}[base]
            ax.barh(ys, xs, height=h, color=COLORS[base], label=label)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", lw=0.8)
    ax.set_xlabel("sessionfs time / baseline time (log; < 1: sessionfs faster)")
    ax.set_title(f"sessionfs vs baselines, same run, medians{' (--quick)' if res.get('quick') else ''}")
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(axis="x", which="both", alpha=0.3)
    return _save(fig, out, "ratios.png")


def storage_plot(res: dict, out: Path) -> str | None:
    st = res.get("storage", {})
    systems = st.get("systems")
    if not systems:
        return None
    plt = _plt()
    items = sorted(systems.items(), key=lambda kv: kv[1]["bytes"])
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(items) + 1.2))
    colors = [COLORS["sessionfs"] if k.startswith("sessionfs") else COLORS["legacy"] if k.startswith("legacy")
              else COLORS["ext4"] for k, _ in items]
    ax.barh(range(len(items)), [v["bytes"] / st["logical_bytes"] for _, v in items], color=colors)
    for i, (_, v) in enumerate(items):
        ax.text(v["bytes"] / st["logical_bytes"], i, f" {fmt_bytes(v['bytes'])}", va="center", fontsize=7)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels([k for k, _ in items])
    ax.set_xlabel(f"bytes stored / logical bytes ({fmt_bytes(st['logical_bytes'])} of files)")
    ax.set_xlim(0, max(v["bytes"] for _, v in items) / st["logical_bytes"] * 1.25)
    ax.set_title("storage: the same tree in each system")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out, "storage.png")


def scaling_plot(res: dict, out: Path) -> str | None:
    pts = res.get("scaling", {}).get("points", [])
    if len(pts) < 2:
        return None
    plt = _plt()
    xs = [p["sessions"] for p in pts]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    for system in ("sessionfs", "ext4", "memfs", "legacy (extrapolated)"):
        ys = [p["list"].get("list_cold", {}).get(system) for p in pts]
        if all(y is not None for y in ys):
            a.plot(xs, ys, marker="o", color=COLORS[system], label=system,
                   ls="--" if "legacy" in system else "-")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("sessions")
    a.set_ylabel("seconds")
    a.set_title("read every metadata.json, cold")
    a.legend(fontsize=7)
    a.grid(which="both", alpha=0.3)
    s50 = [(p.get("search") or {}).get("p50_ms") for p in pts]
    s95 = [(p.get("search") or {}).get("p95_ms") for p in pts]
    grep = [(p.get("search") or {}).get("grep_ms") for p in pts]
    if all(v is not None for v in s50):
        b.plot(xs, s50, marker="o", color=COLORS["sessionfs"], label="search p50")
        b.plot(xs, s95, marker="o", color=COLORS["sessionfs"], ls=":", label="search p95")
    if all(v is not None for v in grep):
        b.plot(xs, grep, marker="o", color=COLORS["ext4"], label="grep -r (no index)")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("sessions")
    b.set_ylabel("ms")
    b.set_title("search latency")
    b.legend(fontsize=7)
    b.grid(which="both", alpha=0.3)
    return _save(fig, out, "scaling.png")


def rss_plot(res: dict, out: Path) -> str | None:
    r = res.get("rss", {})
    tl = r.get("timeline")
    if not tl:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    phases = []
    for t, rss, ph in tl:
        if not phases or phases[-1][0] != ph:
            phases.append([ph, t, t])
        phases[-1][2] = t
    ax.plot([t for t, _, _ in tl], [rss / 1e6 for _, rss, _ in tl], color=COLORS["sessionfs"], lw=1.2,
            label="daemon RSS")
    ax.axhline(r["cache_bytes"] / 1e6, color="gray", ls="--", lw=0.8, label="cache bound (100 MiB)")
    shades = {"write": "#e8f0fa", "commit": "#fdf3e6", "read-back": "#eaf5ec"}
    for ph, t0, t1 in phases:
        if ph in shades:
            ax.axvspan(t0, t1, color=shades[ph], zorder=0)
            ax.text((t0 + t1) / 2, 0, ph, ha="center", va="bottom", fontsize=7, color="dimgray")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax.set_ylim(0, max(rss for _, rss, _ in tl) / 1e6 * 1.2)
    ax.set_title(f"daemon RSS: {fmt_bytes(r['ingest_bytes'])} ingest, commit, cold read-back")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, out, "rss.png")


def make_all(res: dict, out: Path) -> dict:
    out = Path(out)
    try:
        _plt()
    except ImportError:
        res.setdefault("notes", []).append("no plots: matplotlib is not installed (pip install matplotlib)")
        return {}
    made = {}
    for name, fn in (("ratios", ratios_plot), ("storage", storage_plot), ("scaling", scaling_plot),
                     ("rss", rss_plot)):
        try:
            path = fn(res, out)
        except Exception as exc:  # noqa: BLE001 - a plot must not lose the report
            res.setdefault("notes", []).append(f"plot {name} failed: {exc}")
            continue
        if path:
            made[name] = path
    return made
