"""The README's Results block is the committed metrics' (python -m advaudio.report.readme writes it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advaudio.report import readme

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_readme_states_the_committed_metrics():
    assert readme.main(["--readme", str(ROOT / "README.md"), "--metrics", str(ROOT / "metrics"), "--check"]) == 0


def test_a_readme_without_the_markers_is_refused_and_a_stale_block_is_found(tmp_path):
    with pytest.raises(ValueError, match="results:start"):
        readme.replace_block("no block here", "x")
    stale = tmp_path / "README.md"
    stale.write_text(f"intro\n{readme.START}\n| Table I: 99.9 |\n{readme.END}\nrest\n")
    assert readme.main(["--readme", str(stale), "--metrics", str(ROOT / "metrics"), "--check"]) == 1
    assert readme.main(["--readme", str(stale), "--metrics", str(ROOT / "metrics")]) == 0
    text = stale.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "99.9" not in text
