"""Random-init backbones at test sizes, built once for the registry and structure tests (read-only use)."""

from __future__ import annotations

import pytest

from kerascv_tl.backbones import REGISTRY, Backbone, build_backbone

# Built by test_registry and inspected again by test_structure; the rest are built once and dropped.
_SHARED = {"mobilenet_v2", "resnet50", "efficientnet_b0", "vit_tiny16"}


def tiny_size(name: str) -> int:
    return 32 if REGISTRY[name].pooling == "token" else 64


@pytest.fixture(scope="session")
def tiny_backbone():
    """name -> `build_backbone(name, weights=None, image_size=tiny)`; do not mutate what it returns."""
    cache: dict[str, Backbone] = {}

    def get(name: str) -> Backbone:
        if name in cache:
            return cache[name]
        backbone = build_backbone(name, weights=None, image_size=tiny_size(name))
        if name in _SHARED:
            cache[name] = backbone
        return backbone

    return get
