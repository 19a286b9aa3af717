"""`kerascv-tl backbones`: declared parameter counts (nothing built), and `--check` against built networks."""

import dataclasses

import keras
import pytest

from kerascv_tl.backbones import REGISTRY, BackboneSpec
from kerascv_tl.cli import main


def test_the_table_shows_declared_counts_without_building_a_network(monkeypatch, capsys):
    def refuse(spec, *args, **kwargs):
        raise AssertionError(f"{spec.name} was built")

    monkeypatch.setattr(BackboneSpec, "build", refuse)
    assert main(["backbones"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "source", "params", "input"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == list(REGISTRY)
    assert all(rows[name][2] == f"{spec.params:,}" for name, spec in REGISTRY.items())


def test_declared_counts_hold_at_any_image_size_for_convolutional_nets():
    # Without their top, convolutional nets have no weight whose shape follows the image size (ViT's position
    # embeddings do, which is why the declared counts are at each backbone's default size).
    for name, sizes in {"mobilenet_v3_small": (32, 96), "mobilenet_v2": (32, 64), "hub_resnet18": (64,)}.items():
        for size in sizes:
            assert REGISTRY[name].build(size).count_params() == REGISTRY[name].params, (name, size)
            keras.backend.clear_session()


def test_check_prints_declared_and_built_counts(capsys):
    assert main(["backbones", "mobilenet_v3_small", "--check"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["name", "source", "params", "built"]
    assert row.split()[:4] == ["mobilenet_v3_small", "keras.applications", "939,120", "939,120"]


def test_check_exits_1_naming_a_wrong_declared_count(monkeypatch, capsys):
    spec = REGISTRY["mobilenet_v3_small"]
    monkeypatch.setitem(REGISTRY, spec.name, dataclasses.replace(spec, params=spec.params + 1))
    assert main(["backbones", "mobilenet_v3_small", "--check"]) == 1
    err = capsys.readouterr().err
    assert "mismatch: mobilenet_v3_small: declared 939,121 parameters, built 939,120" in err


def test_an_unknown_backbone_is_named(capsys):
    assert main(["backbones", "mobilenet_v2", "resnet9000"]) == 2
    assert "error: unknown backbone(s) resnet9000; registered: resnet50," in capsys.readouterr().err


@pytest.mark.slow(seconds=15)
def test_every_declared_count_is_the_built_networks():
    # Small inputs keep this quick; ViTs are built at their default size, where the count was declared.
    for name, spec in REGISTRY.items():
        size = spec.default_image_size if spec.pooling == "token" else 64
        assert spec.build(size).count_params() == spec.params, name
        keras.backend.clear_session()
