#!/usr/bin/env python3
"""Draws a Chrome trace file (the example's --trace-file) as an SVG, as a trace viewer lays it
out: one block per trace, one row per lane, one bar per event, its length its duration.

  trace_svg.py TRACE.json OUT.svg

The README's picture is drawn this way from the example's own trace file; the same file opens
in Perfetto (ui.perfetto.dev) or chrome://tracing.
"""
import html
import json
import sys

COLOURS = {"client": "#8fb3e8", "REST": "#4f7fd1", "gRPC": "#2f9e7a", "call": "#c9a227",
           "event": "#d9713b", "webhook": "#9b59b6"}


def main(src, out):
    events = json.load(open(src))["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M"}
    bars = [e for e in events if e.get("ph") == "X"]
    rows = sorted({(e["pid"], e["tid"]) for e in bars})
    width, left, row_h, gap = 1100, 170, 22, 26
    by_pid = {}
    for pid, tid in rows:
        by_pid.setdefault(pid, []).append(tid)
    parts, y = [], 10
    for pid, tids in by_pid.items():
        these = [e for e in bars if e["pid"] == pid]
        t0 = min(e["ts"] for e in these)
        span = max(e["ts"] + e["dur"] for e in these) - t0 or 1
        scale = (width - left - 20) / span
        parts.append(f'<text x="10" y="{y + 14}" font-weight="bold">{html.escape(names.get(pid, str(pid)))}'
                     f' — {span / 1000:.1f} ms</text>')
        y += gap
        for tid in tids:
            # Within a lane, an event inside another is drawn one row down (a flame chart).
            lane = sorted((e for e in these if e["tid"] == tid), key=lambda e: (e["ts"], -e["dur"]))
            open_ends, depth_of = [], {}
            for e in lane:
                while open_ends and open_ends[-1] <= e["ts"]:
                    open_ends.pop()
                depth_of[id(e)] = len(open_ends)
                open_ends.append(e["ts"] + e["dur"])
            for e in lane:
                x = left + (e["ts"] - t0) * scale
                y_bar = y + depth_of[id(e)] * row_h
                w = max(e["dur"] * scale, 2)
                colour = COLOURS.get(e["cat"], "#999")
                label = html.escape(e["name"])
                outcome = e["args"].get("outcome", "")
                stroke = ' stroke="#c0392b" stroke-width="2"' if outcome in ("error", "cancelled") else ""
                parts.append(f'<rect x="{x:.1f}" y="{y_bar}" width="{w:.1f}" height="{row_h - 4}" rx="3" '
                             f'fill="{colour}"{stroke}><title>{label} {e["dur"] / 1000:.2f} ms '
                             f'{html.escape(outcome)}</title></rect>')
                if w > 60:
                    parts.append(f'<text x="{x + 4:.1f}" y="{y_bar + 13}" font-size="11" fill="#fff" '
                                 f'clip-path="inset(0)">{label}</text>')
            y += row_h * (max(depth_of.values(), default=0) + 1)
        y += 10
    legend = "".join(f'<rect x="{10 + i * 110}" y="{y}" width="12" height="12" fill="{c}"/>'
                     f'<text x="{26 + i * 110}" y="{y + 11}" font-size="12">{k}</text>'
                     for i, (k, c) in enumerate(COLOURS.items()))
    height = y + 30
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="#fff"/>'
           + "".join(parts) + legend + "</svg>\n")
    open(out, "w").write(svg)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
