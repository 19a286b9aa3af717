"""The figures README and docs/benchmarks.md quote agree with the committed benchmark results
(`benchmarks/quoted_figures.py`; `make bench` runs the same check after measuring again)."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace

import pytest
from support import PROJECT_ROOT


def _module():
    spec = importlib.util.spec_from_file_location("quoted_figures", PROJECT_ROOT / "benchmarks" / "quoted_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_quoted_figure_is_in_its_document_and_agrees_with_the_committed_results():
    quoted = _module()
    assert quoted.QUOTES
    assert quoted.check() == []


def test_a_stale_figure_or_an_edited_document_is_reported(tmp_path):
    quoted = _module()
    quote = quoted.QUOTES[0]
    (tmp_path / f"{quote.result}.json").write_text(json.dumps({"settings": {"none": {"mean": {"macro_f1": 0.5}}}}))
    problem = replace(quote, key="settings/none/mean/macro_f1").problem(tmp_path)
    assert problem is not None and "more than the spread" in problem
    assert "no longer holds" in replace(quote, context="a sentence README does not have").problem()
    assert "has no" in replace(quote, key="settings/none/missing").problem()


@pytest.mark.parametrize("factor,agrees", [(1.3, True), (0.7, True), (1.5, False), (0.5, False)])
def test_times_are_checked_relative_to_the_quoted_figure(tmp_path, factor, agrees):
    quoted = _module()
    time_quote = next(q for q in quoted.QUOTES if q.relative)
    parts = time_quote.key.split("/")
    value: dict = {}
    node = value
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = time_quote.quoted * factor
    (tmp_path / f"{time_quote.result}.json").write_text(json.dumps(value))
    assert (time_quote.problem(tmp_path) is None) is agrees
