"""`pdf2md status` on a terminal: the facts of a run (pdf2md.status) as a compact text view."""

from __future__ import annotations

from typing import Any

BAR_WIDTH = 24


def bar(done: float, total: float | None, width: int = BAR_WIDTH) -> str:
    """A text progress bar; an unknown total shows as an empty frame."""
    if not total:
        return "[" + " " * width + "]"
    filled = min(width, round(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def format_status(facts: dict[str, Any]) -> str:
    """The compact terminal view: a header, each round's aggregate (per-shard lines only where the
    facts carry a shard table: `pdf2md status --shards`), failures and spend."""
    t, spend = facts["totals"], facts["spend"]
    lines = [f"pdf2md run {facts['run_id']}: {facts['state'].upper()}{' (live)' if facts['live'] else ''}"
             f"{' - ' + facts['message'] if facts['message'] else ''}",
             f"  {facts['run_uri']}",
             *(f"  failed task {t['task_id']}: {t['message']}" for t in facts.get("failed_tasks", ())),
             f"  PDFs {t['converted']} converted, {t['skipped']} skipped of {t['assigned']}; {t['pages']} pages; "
             f"{t['shards']} shard(s) in {t['rounds']} round(s): "
             + ", ".join(f"{n} {s}" for s, n in sorted(t["shards_by_state"].items()))]
    for rnd in facts["rounds"]:
        lines.extend(_format_round(rnd))
    lines.append("failures  " + (f"{facts['failures']['total']} standing" if facts["failures"]["total"] else "none"))
    for cls in facts["failures"]["by_class"]:
        keys = ", ".join(cls["keys"][:3]) + (", …" if cls["count"] > 3 else "")
        lines.append(f"  {cls['error_class']:<20} {cls['count']:>5}  {'retryable' if cls['retryable'] else 'permanent'}  {keys}")
    budget = spend["budget_usd"]
    lines.append(f"spend     ${spend['spent_usd']:.4f}" + (f" of ${budget:.2f} {bar(spend['spent_usd'], budget)}" if budget else
                                                        " (budget unknown until the report: pass --budget-usd)")
                 + f"  {spend['instance_seconds'] / 3600:.4f} instance-h × ${spend['price_per_hour_usd']:.4f}/h ({spend['price_source']})")
    return "\n".join(lines)


def _format_round(rnd: dict[str, Any]) -> list[str]:
    job = rnd["job"]
    head = f"round {rnd['round']}{' (rerun)' if rnd['rerun'] else ''}"
    if job:
        head += f"  job {job['job_id']} {job['status']}: " + ", ".join(f"{n} {s}" for s, n in sorted(job["children_by_status"].items()))
    if rnd["summary"]:
        s = rnd["summary"]
        head += (f"  reduced: {s['converted']} converted, {s['skipped']} skipped, {sum(s['permanent_by_class'].values())} failed, "
                 f"{sum(s['retryable_by_class'].values())} to rerun")
    p = rnd["progress"]
    lines = [head,
             f"  shards {p['shards']}: " + (", ".join(f"{n} {state}" for state, n in p["by_state"].items()) or "none yet"),
             f"  PDFs   {bar(p['done'], p['assigned'])} {p['done']}/{p['assigned']} done: {p['converted']} converted, "
             f"{p['skipped']} skipped, {p['failed']} failed; {p['pages']} pages",
             "  done % " + _histogram(p["histogram"])]
    if p["slowest"]:
        lines.append("  slowest " + ", ".join(f"#{s['shard']} {s['done']}/{s['assigned']}" for s in p["slowest"]))
    for name in ("interrupted", "failed_shards", "lost", "stale"):
        if p[name]:
            lines.append(f"  {name.replace('_shards', ''):<8}" + _names(p[name]))
    if "shard_table" in rnd:
        lines.extend(_shard_lines(rnd["shard_table"]))
    return lines


def _histogram(bins: list[int]) -> str:
    """Shards per tenth of their PDFs done, the empty tenths left out."""
    width = 100 // len(bins) if bins else 100
    shown = [f"{i * width}-{(i + 1) * width}%: {n}" for i, n in enumerate(bins) if n]
    return "  ".join(shown) or "no shards yet"


def _names(shards: list[int], shown: int = 20) -> str:
    more = f" … and {len(shards) - shown} more" if len(shards) > shown else ""
    return " " + ", ".join(f"#{i}" for i in shards[:shown]) + more


def _shard_lines(table: dict[str, Any]) -> list[str]:
    lines = [f"  {'shard':>5} {'state':<11} {'PDFs':<{BAR_WIDTH + 2}} {'done':>9} {'pages':>11} {'pages/h':>9}"]
    for s in table["rows"]:
        assigned = s["assigned"]
        done = f"{s['done']}/{assigned if assigned is not None else '?'}"
        lines.append(f"  {s['shard']:>5} {s['state']:<11} {bar(s['done'], assigned)} {done:>9} {s['pages']:>11} {s['pages_per_hour']:>9.0f}")
    shown = table["offset"] + len(table["rows"])
    if table["offset"] or shown < table["total"]:
        lines.append(f"  shards {table['offset']}-{shown - 1} of {table['total']}")
    return lines
