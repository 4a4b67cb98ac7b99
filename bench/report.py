"""The suite's outputs: bench/results/<date>.json, the ratio table in docs/performance.md, and the plots."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SPECIAL = ("<!-- special:start -->", "<!-- special:end -->")


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "\u2013"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _target(e: dict[str, Any]) -> str:
    op = "≥" if e["target"]["op"] == ">=" else "≤"
    value = e["target"]["value"]
    if e["unit"] == "ms stall":
        return f"{op} {value} ms"
    if e["unit"] == "MiB":
        return f"{op} {value} MiB apart"
    what = "time " if e["unit"] == "s" else ""
    text = f"{what}{op} {value}\u00d7"
    if e.get("memory_bound_mib"):
        b = e["memory_bound_mib"]
        text += f"; memory {'<' if b['op'] == '<' else '≤'} {b['value']} MiB"
    if e["case"].startswith("Django"):
        text += "; 0 S3 requests, ≤ 3 queries"
    return text


def _ratio(e: dict[str, Any]) -> str:
    r = e.get("ratio")
    if r is None:
        return "\u2013"
    if e["unit"] == "ms stall":
        return f"{r:.1f} ms"
    if e["unit"] == "MiB":
        return f"{r:.1f} MiB"
    return f"{r:.2f}\u00d7"


def _memory(e: dict[str, Any]) -> str:
    m = e.get("memory_mib")
    if not m:
        return ""
    parts = [f"{m['ours']:+.0f}"]
    if m.get("boto3") is not None:
        parts.append(f"{m['boto3']:+.0f}")
    if m.get("django-storages") is not None:
        parts.append(f"{m['django-storages']:+.0f}")
    return " / ".join(parts) + " MiB"


def _met(e: dict[str, Any]) -> str:
    if e["met"]:
        return "yes"
    why = [w for w, ok in (("speed", e["met_speed"]), ("memory", e["met_memory"])) if not ok]
    if e["case"].startswith("Django") and not why:
        why = ["requests/queries"]
    return "**no**" + (f" ({', '.join(why)})" if why else "")


def table(meta: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """Return the generated part of docs/performance.md: the run's header, the ratio table, the plots."""
    lines = [
        f"Last run: {meta['date']} on {meta['server']}, database {meta['database']}, {meta['cores']} cores, "
        f"{meta['duration_s']:.0f} s in all (`{meta['command']}`). Ratios are ours / the peer named in the target, "
        "measured in this run; memory is the growth of the process's peak RSS over its idle RSS "
        "(ours / raw boto3 / django-storages).",
        "",
        "| case | ours | raw boto3 | django-storages | ratio | target | met | memory growth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in results:
        unit = e["unit"]
        extra = ""
        if e["case"].startswith("Django"):
            extra = f" ({e['page_queries']} queries, {e['s3_requests']} S3 requests)"
        lines.append(
            f"| {e['case']}{extra} | {_num(e['ours'], unit)} | {_num(e['boto3'], unit)} | {_num(e.get('django-storages'), unit)} | "
            f"{_ratio(e)} | {_target(e)} | {_met(e)} | {_memory(e)} |"
        )
    lines += [
        "",
        "![Small uploads: throughput against threads](img/bench-throughput.png)",
        "![Client memory growth against file size](img/bench-memory.png)",
    ]
    return "\n".join(lines)


def special_table(meta: dict[str, Any], data: dict[str, Any]) -> str:
    """Return the special paths' table: ON and OFF per case and latency, the gain, the spread, and whether it pays."""
    sizes = ", ".join(f"{k} {v:,}" for k, v in data["sizes"].items())
    lines = [
        f"Run: {meta['date']} on {meta['server']}, database {meta['database']}, {meta['cores']} cores, "
        f"{data['rounds']} interleaved rounds (`{meta['command']}`; sizes: {sizes}). Medians, with the lowest and highest "
        "round; gain = median ON / median OFF - 1; spread = the larger side's (highest - lowest) / median; "
        "per round = ON / OFF - 1 within each round: median (lowest … highest; rounds where ON was the faster); "
        "CPU = this process's CPU time per file or object, median (ON / OFF).",
        "",
        "| case (path) | S3 latency | ON | OFF | raw boto3 | gain | per round | spread | gain > spread | CPU ON / OFF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def side(s: dict[str, float]) -> str:
        return f"{_num(s['median'])} ({_num(s['min'])}\u2013{_num(s['max'])})"

    for row in data["rows"]:
        p, cpu, runs = row["paired_gain"], row["cpu_ms"], row["runs"]["on"]
        lines.append(
            f"| {row['case']} (`{row['path']}`) | {row['latency_ms']:g} ms | {side(row['on'])} {row['unit']} | {side(row['off'])} | "
            f"{_num(row['raw boto3'])} | {row['gain']:+.1%} | {p['median']:+.1%} ({p['min']:+.1%} … {p['max']:+.1%}; {p['wins']}/{len(runs)}) | "
            f"{row['spread']:.1%} | {'**yes**' if row['pays'] else 'no'} | {cpu['on']:.2f} / {cpu['off']:.2f} ms |"
        )
    return "\n".join(lines)


def rewrite_docs(doc: pathlib.Path, generated: str, markers: tuple[str, str] = (START, END)) -> None:
    """Replace what lies between the two marker comments of ``doc`` (appending them when missing)."""
    start, end = markers
    text = doc.read_text() if doc.exists() else "# Performance\n"
    block = f"{start}\n{generated}\n{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def write_json(path: pathlib.Path, meta: dict[str, Any], results: list[dict[str, Any]], sweeps: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": results, "sweeps": sweeps}, indent=2, ensure_ascii=False) + "\n")


def plots(sweeps: dict[str, Any], out: pathlib.Path, meta: dict[str, Any]) -> list[pathlib.Path]:
    """Draw throughput against concurrency and memory against file size; return the PNGs written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    subtitle = f"{meta['server']}, {meta['database']}, {meta['cores']} cores, {meta['date']}"

    def finish(fig: Any, ax: Any, ticks: list[Any], xlabel: str, ylabel: str, title: str, name: str) -> pathlib.Path:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}\n{subtitle}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        return out / name

    up = sweeps.get("uploads_by_threads")
    if up:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.plot(up["threads"], up["ours"], "o-", label="django-s3strata (sync API, Django ORM)")
        ax.plot(up["threads"], up["ours_core"], "s--", label="django-s3strata core (no database)")
        ax.plot(up["threads"], up["boto3"], "^-", label="raw boto3 put_object")
        written.append(
            finish(fig, ax, up["threads"], "threads", "files/s", f"{up['files']} uploads of 4 KiB", "bench-throughput.png")
        )
    mem = sweeps.get("memory_by_size")
    if mem:
        sizes = [p["mib"] for p in mem]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.plot(sizes, [p["upload"]["ours"] for p in mem], "o-", label="upload from a file: django-s3strata")
        ax.plot(sizes, [p["upload"]["boto3"] for p in mem], "o--", label="upload from a file: raw boto3 (best variant)")
        ax.plot(sizes, [p["cross"]["ours"] for p in mem], "s-", label="move across endpoints: django-s3strata")
        ax.plot(sizes, [p["cross"]["boto3"] for p in mem], "s--", label="move across endpoints: raw boto3 (stream)")
        ax.axhline(64, color="grey", lw=0.8, ls=":", label="64 MiB bound")
        written.append(
            finish(
                fig, ax, sizes, "file size (MiB)", "peak RSS growth (MiB)", "Client memory against file size", "bench-memory.png"
            )
        )
    return written
