"""The comparison table: the best backbone (overall and under a latency bound), compare.json and compare.md."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kerascv_tl.compare.offline import RANDOM, UNAVAILABLE
from kerascv_tl.utils.io import atomic_write_json, atomic_write_text

COLUMNS = (  # (row key, header, format)
    ("name", "backbone", "{}"),
    ("weights", "weights", "{}"),
    ("params", "params", "{:,}"),
    ("embedding_dim", "dim", "{}"),
    ("accuracy", "probe acc", "{:.3f}"),
    ("macro_f1", "macro F1", "{:.3f}"),
    ("images_per_s", "extract img/s", "{:.1f}"),
    ("latency_ms", "latency ms (b=1)", "{:.1f}"),
    ("seconds", "seconds", "{:.0f}"),
)


def probed(rows: Sequence[dict]) -> list[dict]:
    return [row for row in rows if row.get("accuracy") is not None]


def best_backbone(rows: Sequence[dict], max_latency_ms: float | None = None) -> dict | None:
    """The probed row with the highest probe accuracy (then macro F1, then lower latency), among those at or
    under `max_latency_ms` when given; None when no row qualifies."""
    candidates = [row for row in probed(rows) if max_latency_ms is None or row["latency_ms"] <= max_latency_ms]
    if not candidates:
        return None
    return max(candidates, key=lambda row: (row["accuracy"], row["macro_f1"], -row["latency_ms"]))


def summary(rows: Sequence[dict], max_latency_ms: float | None) -> dict:
    """The JSON's `best` block: names (None where nothing qualifies) and whether each one is random-weight."""
    overall = best_backbone(rows)
    bounded = best_backbone(rows, max_latency_ms) if max_latency_ms is not None else None
    return {
        "best": overall and overall["name"],
        "best_random": bool(overall and overall["weights"] == RANDOM),
        "max_latency_ms": max_latency_ms,
        "best_under_latency": bounded and bounded["name"],
        "best_under_latency_random": bool(bounded and bounded["weights"] == RANDOM),
    }


def markdown_table(rows: Sequence[dict]) -> str:
    """One line per backbone; a random-weight backbone's name carries a `*` and a skipped one says why."""
    lines = [
        "| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            if key == "name" and row["weights"] == RANDOM:
                cells.append(f"{value} *")
            elif key == "weights" and row["weights"] == UNAVAILABLE:
                cells.append("no weights here")
            elif value is None:
                cells.append("–")
            else:
                cells.append(fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_lines(best: dict) -> list[str]:
    lines = []
    if best["best"] is not None:
        warn = " (random weights!)" if best["best_random"] else ""
        lines.append(f"best probe accuracy: {best['best']}{warn}")
    if best["max_latency_ms"] is not None:
        name = best["best_under_latency"] or "none qualifies"
        name += " (random weights!)" if best["best_under_latency_random"] else ""
        lines.append(f"best at or under {best['max_latency_ms']:g} ms (batch 1): {name}")
    return lines


def write_report(output: Path, config_name: str, rows: Sequence[dict], best: dict, meta: dict) -> str:
    """Writes compare.json and compare.md; returns the Markdown (table, footnotes and the best lines)."""
    atomic_write_json(output / "compare.json", {"config": config_name, **meta, **best, "backbones": list(rows)})
    notes = []
    if any(row["weights"] == RANDOM for row in rows):
        notes.append("\\* random weights: not pretrained, a lower bound for the architecture, not its transfer.")
    for row in rows:
        if row["weights"] == UNAVAILABLE:
            notes.append(f"{row['name']}: not probed, {row['note']}.")
    text = (
        f"# Backbone comparison: {config_name}\n\n"
        f"Linear probe on cached embeddings, {meta['train_images']} training and {meta['val_images']} validation "
        f"images at {meta['image_size']} px; latency: median of one image through the backbone on this machine.\n\n"
        + markdown_table(rows)
        + "".join(f"\n{note}\n" for note in notes)
        + "".join(f"\n{line}\n" for line in best_lines(best))
    )
    atomic_write_text(output / "compare.md", text)
    return text
