"""The README's table of algorithms is the registry's (scripts/algorithm_table.py writes it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_is_generated_from_the_registry():
    spec = importlib.util.spec_from_file_location("algorithm_table", ROOT / "scripts" / "algorithm_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- algorithms:start -->\n", "\n<!-- algorithms:end -->"
    assert readme[readme.index(start) + len(start) : readme.index(end)] == module.table()
