"""Print the README's table of algorithms from the registry (the README keeps it between the
``<!-- algorithms:start -->`` and ``<!-- algorithms:end -->`` markers; a test checks they agree).

    PYTHONPATH=$PWD .venv/bin/python scripts/algorithm_table.py
"""

from __future__ import annotations

import sys

from convscope import algorithms
from convscope.vocabulary import INPUT, Target

LAYER = "<layer>"


def what_it_needs(name: str) -> str:
    algo = algorithms.get(name)
    needs = algo.needs(Target("class", 0), LAYER if algo.uses_layer else None)
    parts = []
    for g in needs.grads:
        where = "the input" if g.wrt == INPUT else "the layer (tail backward)"
        parts.append(f"{g.rule} gradient at {where}")
    if needs.activations and not needs.grads:
        parts.append("the layer's activations, no backward")
    for rows in needs.rows:
        count = {"augment": "6", "ablate": "K + 1", "mask": "K"}.get(rows.kind, "N")
        back = ", one backward" if rows.target is not None and rows.wrt else ", no backward"
        parts.append(f"{count} extra rows per frame ({rows.kind}{back})")
    return "; ".join(parts)


def table() -> str:
    lines = ["| name | method | what it shows | what it needs |", "|---|---|---|---|"]
    for algo in algorithms.all():
        lines.append(f"| `{algo.name}` | {algo.title} | {algo.summary} | {what_it_needs(algo.name)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
