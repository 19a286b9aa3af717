"""`kerascv-tl compare`: per-backbone linear probes on tiny synthetic data with random-weight backbones."""

from __future__ import annotations

import json
import os

import pytest
from support import assert_png, tiny_overrides

from kerascv_tl.compare.report import best_backbone, markdown_table, summary
from kerascv_tl.config import ConfigError, load_config

# Smallest keras.applications nets at 32 px; none has ImageNet weights in an offline test's Keras cache.
SMALL = "mobilenet_v3_small"
OTHER = "mobilenet_v2"


def _row(name, accuracy, latency, weights="imagenet (Keras cache)", macro_f1=None):
    return {
        "name": name,
        "weights": weights,
        "accuracy": accuracy,
        "macro_f1": accuracy if macro_f1 is None else macro_f1,
        "latency_ms": latency,
    }


def test_best_backbone_overall_and_under_a_latency_bound():
    rows = [
        _row("big", 0.95, 40.0),
        _row("mid", 0.90, 12.0),
        _row("fast", 0.80, 3.0),
        {"name": "skipped", "weights": "unavailable", "accuracy": None, "latency_ms": None},
    ]
    assert best_backbone(rows)["name"] == "big"
    assert best_backbone(rows, 12.0)["name"] == "mid"  # the bound is inclusive
    assert best_backbone(rows, 11.9)["name"] == "fast"
    assert best_backbone(rows, 1.0) is None
    # Ties on accuracy go to the better macro F1, then to the faster net.
    tied = [_row("a", 0.9, 5.0, macro_f1=0.8), _row("b", 0.9, 9.0, macro_f1=0.85), _row("c", 0.9, 2.0, macro_f1=0.85)]
    assert best_backbone(tied)["name"] == "c"
    best = summary(rows, 11.9)
    assert (best["best"], best["best_under_latency"], best["best_random"]) == ("big", "fast", False)
    assert summary([*rows, _row("rnd", 0.85, 1.0, weights="random")], 2.0)["best_under_latency_random"] is True
    assert summary(rows, None)["best_under_latency"] is None


def test_markdown_table_marks_random_and_unavailable_backbones():
    rows = [
        _row("mobilenet_v2", 0.9, 5.0) | {"params": 2_257_984, "embedding_dim": 1280},
        _row("resnet50", 0.4, 9.0, weights="random"),
        {"name": "vit_base16", "weights": "unavailable", "note": "not cached"},
    ]
    lines = markdown_table(rows).splitlines()
    assert len(lines) == 5
    assert lines[2].startswith("| mobilenet_v2 | imagenet (Keras cache) | 2,257,984 | 1280 | 0.900 |")
    assert lines[3].startswith("| resnet50 * | random |")
    assert lines[4].startswith("| vit_base16 | no weights here | – |")


@pytest.fixture(scope="module")
def compared(shapes_classification, tmp_path_factory):
    """One CLI run over two random-weight backbones plus one without weights (not probed)."""
    from kerascv_tl.cli import study

    out = tmp_path_factory.mktemp("compare")
    config = out / "shapes.yaml"
    config.write_text(load_config(None, tiny_overrides(shapes_classification)).to_yaml())
    args = _parse(study, [str(config), "--backbones", f"{SMALL},{OTHER}", "--allow-random"])
    args.output, args.max_latency_ms, args.probe_epochs = str(out / "report"), 1e6, 3
    assert study.cmd_compare(args) == 0
    return out / "report"


@pytest.mark.slow(seconds=40)
def test_compare_writes_rows_marked_random_a_table_and_a_plot(compared):
    report = json.loads((compared / "compare.json").read_text())
    rows = {row["name"]: row for row in report["backbones"]}
    assert list(rows) == [SMALL, OTHER]
    for row in rows.values():
        assert row["weights"] == "random" and row["random"] is True
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["macro_f1"] <= 1.0
        assert row["params"] > 0 and row["embedding_dim"] > 0
        assert row["images_per_s"] > 0 and row["latency_ms"] > 0
        assert row["images_per_s_from"] == "extraction of 36 images"  # 24 training + 12 validation images
    assert rows[SMALL]["embedding_dim"] == 576 and rows[OTHER]["embedding_dim"] == 1280
    assert report["best"] in rows and report["best_random"] is True
    assert report["best_under_latency"] == report["best"]  # the bound admits every backbone
    assert (report["train_images"], report["val_images"], report["image_size"]) == (24, 12, 32)
    markdown = (compared / "compare.md").read_text()
    assert f"| {SMALL} * | random |" in markdown and "random weights" in markdown
    assert_png(compared / "compare_accuracy_latency.png")


@pytest.mark.slow(seconds=30)
def test_a_second_run_reads_the_embeddings_back_and_times_a_batch(compared, shapes_classification):
    from kerascv_tl.compare import ProbeSettings, compare_backbones

    config = load_config(None, tiny_overrides(shapes_classification))
    config.train.feature_cache_dir = str(compared / ".feature_cache")
    settings = ProbeSettings(epochs=3, latency_runs=2, latency_warmup=1)
    first = json.loads((compared / "compare.json").read_text())["backbones"][0]
    again = compare_backbones(config, compared.parent / "again", [SMALL], allow_random=True, settings=settings)
    row = again["backbones"][0]
    assert row["images_per_s_from"] == "timed batch (cache hit)"
    assert row["accuracy"] == first["accuracy"]  # same seeded random weights, same embeddings, same probe


@pytest.mark.slow(seconds=20)
def test_a_backbone_without_weights_is_reported_unavailable_and_not_probed(shapes_classification, tmp_path, caplog):
    from kerascv_tl.compare import ProbeSettings, compare_backbones
    from kerascv_tl.compare.offline import offline_keras_applications

    config = load_config(None, tiny_overrides(shapes_classification))
    settings = ProbeSettings(epochs=2, latency_runs=2, latency_warmup=1)
    with offline_keras_applications():  # this check must not download, even on a connected machine
        result = compare_backbones(config, tmp_path, [SMALL, OTHER], settings=settings, config_name="shapes")
    rows = {row["name"]: row for row in result["backbones"]}
    # SMALL's ImageNet file is not in the cache; OTHER is the config's own backbone, with weights none.
    for name in (SMALL, OTHER):
        assert rows[name]["weights"] == "unavailable" and rows[name]["accuracy"] is None
        assert rows[name]["latency_ms"] is None
    assert "not in Keras' cache" in rows[SMALL]["note"]
    assert result["best"] is None
    assert not list((tmp_path / ".feature_cache").glob("*.npz"))  # nothing was embedded
    assert "no weights here" in (tmp_path / "compare.md").read_text()
    assert_png(tmp_path / "compare_accuracy_latency.png")  # says that nothing was probed


def test_imagenet_weights_already_in_the_keras_cache_are_used_without_a_download(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    from kerascv_tl.compare import offline

    monkeypatch.setattr(offline, "keras_cache_dir", lambda: tmp_path / "models")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "cached.h5").write_bytes(b"x")
    calls = []
    monkeypatch.setattr(file_utils, "get_file", lambda fname, origin, **kw: calls.append(fname) or f"/{fname}")
    with offline.offline_keras_applications():
        assert file_utils.get_file("cached.h5", "https://example.invalid/cached.h5", cache_subdir="models")
        with pytest.raises(offline.NotCached, match="missing.h5"):
            file_utils.get_file("missing.h5", "https://example.invalid/missing.h5", cache_subdir="models")
    assert calls == ["cached.h5"]  # only the cached file reached Keras' get_file
    assert file_utils.get_file("any.h5", "o") == "/any.h5"  # put back on the way out


def test_unknown_backbone_and_non_classification_config_are_one_line_errors(shapes_classification, tmp_path):
    from kerascv_tl.compare import compare_backbones

    config = load_config(None, tiny_overrides(shapes_classification))
    with pytest.raises(ConfigError, match="unknown backbone.*nope"):
        compare_backbones(config, tmp_path, [SMALL, "nope"])
    with pytest.raises(ConfigError, match="not among the compared"):
        compare_backbones(config, tmp_path, [SMALL], weights={"resnet50": "imagenet"})
    detection = load_config("shapes_detection")
    with pytest.raises(ConfigError, match="classification configs; this one's task is detection"):
        compare_backbones(detection, tmp_path, [SMALL])
    assert not os.listdir(tmp_path)  # refused before reading any data


def test_weights_options_parse_and_refuse_malformed_items():
    from kerascv_tl.compare.offline import parse_weights_options

    assert parse_weights_options(["resnet50=a/b.weights.h5", " mit_b0 = dir "]) == {
        "resnet50": "a/b.weights.h5",
        "mit_b0": "dir",
    }
    with pytest.raises(ConfigError, match="NAME=SPEC"):
        parse_weights_options(["resnet50"])
    with pytest.raises(ConfigError, match="downloads nothing"):
        parse_weights_options(["hub_resnet18=kaggle://keras/resnetv2/keras/resnet_18_imagenet"])


def _parse(module, argv):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    common = argparse.ArgumentParser(add_help=False)
    module.add_parsers(sub, common)
    return parser.parse_args(["compare", *argv])


@pytest.mark.slow(seconds=20)
def test_by_default_only_backbones_with_weights_here_are_compared(shapes_classification, tmp_path, monkeypatch):
    import kerascv_tl.compare as compare
    from kerascv_tl.backbones import REGISTRY

    monkeypatch.setattr(compare, "REGISTRY", {name: REGISTRY[name] for name in (OTHER, SMALL)})
    config = load_config(None, tiny_overrides(shapes_classification))  # mobilenet_v2 with weights none
    result = compare.compare_backbones(config, tmp_path, allow_random=True)  # random ones are not added by default
    assert result["backbones"] == [] and result["best"] is None
    assert [row["name"] for row in result["not_compared"]] == [OTHER, SMALL]
    assert "not in Keras' cache" in result["not_compared"][1]["note"]
    assert json.loads((tmp_path / "compare.json").read_text())["not_compared"] == result["not_compared"]


@pytest.mark.slow(seconds=20)
def test_weights_named_per_backbone_are_loaded_and_probed(shapes_classification, mobilenet_v2_weights, tmp_path):
    from kerascv_tl.compare import ProbeSettings, compare_backbones

    config = load_config(None, tiny_overrides(shapes_classification, **{"backbone.name": SMALL}))
    settings = ProbeSettings(epochs=2, latency_runs=2, latency_warmup=1)
    result = compare_backbones(config, tmp_path, [SMALL, OTHER], {OTHER: str(mobilenet_v2_weights)}, settings=settings)
    small, other = result["backbones"]
    assert small["weights"] == "unavailable" and small["accuracy"] is None  # the config's weights: none
    assert other["weights"] == f"file {mobilenet_v2_weights.name}" and other["random"] is False
    assert other["params"] == 2_257_984 and other["accuracy"] is not None
    assert result["best"] == OTHER and result["best_random"] is False
