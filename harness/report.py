"""The capacity report: Markdown and a self-contained HTML page, with plots, from a measured run's results.

One table per run: for each link class x profile x plan, what the model admits (its 75 % share),
what it says the link carries (100 % of the rate), what the emulated link carried, and the
difference; where the two differ by more than 10 % the report says why, from the run's own
figures. Plots: delivered quality against concurrent sessions with the model's limits marked,
and each measured link's load over the run.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen: render to files
import matplotlib.pyplot as plt  # noqa: E402

TOLERANCE = 0.10


def difference(case: dict[str, Any]) -> float | None:
    carried = case["model"]["carried"]
    return None if not carried or "measured" not in case else (case["measured"] - carried) / carried


def per_session_load(case: dict[str, Any]) -> float | None:
    """Measured kbit/s of one session on the binding direction (the first step's link counters)."""
    d = case["model"]["direction"]
    first = next((s for s in case["steps"] if s["sessions"] == 1), None)
    return first["link_kbps"].get(d) if first else None


def why(case: dict[str, Any]) -> str:
    """The run's own explanation of a difference beyond 10 % (or of none)."""
    diff = difference(case)
    if diff is None:
        return "not measured (the run stopped before this case)"
    model_load, measured_load = case["model"]["per_session_kbps"], per_session_load(case)
    load_note = ""
    if measured_load:
        load_note = (f"one session measured {measured_load:,.0f} kbit/s {case['model']['direction']} against the "
                     f"model's {model_load:,} ({100 * (measured_load / model_load - 1):+.1f} %)")
    if abs(diff) <= TOLERANCE:
        return f"within 10 %; {load_note}" if load_note else "within 10 %"
    failed = next((s for s in case["steps"] if not s["passed"]), None)
    if diff < 0 and failed is not None:
        drops = failed["link_drops"].get(case["model"]["direction"], 0)
        if not drops:
            return (f"the first failing step ({failed['sessions']} sessions: {failed['why']}) dropped nothing at the "
                    "link: the machine (CPU of the synthetic sites and nodes), not the link, limited it; " + load_note)
        return f"the link dropped {drops} packets at {failed['sessions']} sessions; {load_note}"
    return f"the link carried more than the model's rate / load allows (its queue absorbed the bursts); {load_note}"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _nothing_measured() -> bytes:
    fig, ax = plt.subplots(figsize=(6, 1))
    ax.axis("off")
    ax.text(0.5, 0.5, "no step was measured before the run stopped", ha="center", va="center")
    return _png(fig)


def quality_plot(result: dict[str, Any]) -> bytes:
    cases = [c for c in result["cases"] if c["steps"]]
    if not cases:
        return _nothing_measured()
    fig, axes = plt.subplots(len(cases), 1, figsize=(8, 2.6 * max(1, len(cases))), squeeze=False)
    for ax, case in zip(axes[:, 0], cases):
        n = [s["sessions"] for s in case["steps"]]
        ax.plot(n, [s["worst_loss_pct"] or 0 for s in case["steps"]], "o-", color="tab:red", label="worst loss %")
        ax.set_ylabel("loss %")
        ax2 = ax.twinx()
        ax2.plot(n, [s["min_fps"] for s in case["steps"]], "s--", color="tab:blue", label="slowest stream fps")
        ax2.set_ylabel("fps")
        ax2.set_ylim(0, 32)
        ax.axvline(case["model"]["admitted"], color="gray", linestyle=":", label="model admits (75 %)")
        ax.axvline(case["model"]["carried"], color="black", linestyle="--", label="model: link carries")
        if case.get("measured") is not None:
            ax.axvline(case["measured"] + 0.05, color="tab:green", linewidth=2, label="measured")
        ax.set_title(f"{case['case']} — {case['link_class']}", fontsize=9)
        ax.set_xticks(n)
        ax.set_xlabel("concurrent sessions")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
    return _png(fig)


def load_plot(result: dict[str, Any]) -> bytes:
    """Per case, the measured link's kbit/s each way over its steps, against the emulated rate."""
    cases = [c for c in result["cases"] if c["steps"]]
    if not cases:
        return _nothing_measured()
    fig, axes = plt.subplots(len(cases), 1, figsize=(8, 2.2 * max(1, len(cases))), squeeze=False)
    for ax, case in zip(axes[:, 0], cases):
        for d, colour in (("down", "tab:purple"), ("up", "tab:orange")):
            series = result["link_series"].get(f"{case['case']}|{d}", [])
            ax.plot([p[0] for p in series], [p[1] for p in series], label=d, linewidth=1, color=colour)
        ax.axhline(case["model"]["rate_kbps"], linestyle="--", linewidth=0.8, color="gray", label="link rate")
        ax.set_title(f"{case['case']}: link {case['link']} over the run (steps of 1, 2, ... sessions)", fontsize=9)
        ax.set_ylabel("kbit/s")
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("seconds")
    return _png(fig)


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for c in result["cases"]:
        diff = difference(c)
        m = c["model"]
        scaled = f", x{c['scale']:g}" if c.get("scale", 1) != 1 else ""
        rows.append([c["link_class"] + f" ({c['link']}, {m['rate_kbps']:,} kbit/s emulated{scaled})", c["profile"], c["plan"],
                     str(m["admitted"]), str(m["carried"]), str(c.get("measured", "–")),
                     "–" if diff is None else f"{100 * diff:+.0f} %", why(c)])
    return rows


HEAD = ["link", "profile", "plan", "model admits", "model: link carries", "measured", "difference", "why"]


def markdown(result: dict[str, Any], command: str) -> str:
    cfg = result["config"]
    out = [f"# Capacity measured over the emulated WAN{' (PARTIAL: the run was interrupted)' if result['partial'] else ''}",
           "", f"Made by `{command}` on {cfg.get('started', '?')}.", "",
           f"Each case on a network of its own where only the measured link is scaled: links faster than "
           f"{cfg.get('scale_above_kbps', 0) / 1000:g} Mbit/s by {cfg.get('scale')}, or less where the model would "
           "then carry more than 5 sessions (this 2-core machine runs out before the link; the factor is in the "
           "table); a freeze with nothing lost, nothing dropped and delay normal is listed as this machine's "
           "stall, not charged to the link; "
           f"{cfg.get('window_s')} s measured per step; a step passes with loss < 1 % and no freeze (> 200 ms "
           "without a frame) at any site.", "",
           "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    out += ["", "![quality against concurrent sessions](quality.png)", "", "![link load over the run](load.png)", ""]
    if result["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    out += ["## Steps", ""]
    for c in result["cases"]:
        out.append(f"**{c['case']}** (sites {', '.join(c['sites'])}):")
        for s in c["steps"]:
            verdict = "pass" if s["passed"] else "FAIL"
            out.append(f"- {s['sessions']} sessions: {verdict} — {s['why']}; link "
                       f"{s['link_kbps']} kbit/s, drops {s['link_drops']}, worst loss {s['worst_loss_pct']} %, "
                       f"freezes {s['freezes']}, slowest {s['min_fps']} fps, delay p95 {s['delay_ms_p95']} ms"
                       f"{', booked past admission: ' + str(s['overridden']) if s['overridden'] else ''}")
        out.append("")
    return "\n".join(out)


def html_page(result: dict[str, Any], command: str, quality: bytes, load: bytes) -> str:
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in table_rows(result))
    img = lambda b, alt: f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'  # noqa: E731
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result["notes"])
    partial = "<p class=partial>PARTIAL: the run was interrupted; what is here was measured.</p>" if result["partial"] else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>confctl capacity</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:1em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .5em;font-size:.9em}}.partial{{color:#b00;font-weight:bold}}img{{max-width:100%}}</style>
</head><body><h1>Capacity measured over the emulated WAN</h1>{partial}
<p>Made by <code>{html.escape(command)}</code> on {html.escape(result['config'].get('started', '?'))}.</p>
<table><tr>{''.join(f'<th>{h}</th>' for h in HEAD)}</tr>{rows}</table>
{img(quality, 'quality against concurrent sessions')}{img(load, 'link load over the run')}
{'<h2>Notes</h2><ul>' + notes + '</ul>' if notes else ''}</body></html>"""


def write_report(result: dict[str, Any], out: Path, command: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    quality, load = quality_plot(result), load_plot(result)
    (out / "quality.png").write_bytes(quality)
    (out / "load.png").write_bytes(load)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    (out / "report.md").write_text(markdown(result, command))
    (out / "report.html").write_text(html_page(result, command, quality, load))
    return [out / "report.md", out / "report.html", out / "results.json"]
