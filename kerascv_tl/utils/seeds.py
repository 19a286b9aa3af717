"""The seed generators (Keras random-stream state variables) inside layers and models."""

from __future__ import annotations


def seed_generators(*layers) -> list:
    """Every `keras.random.SeedGenerator` of `layers` and their sublayers, in a fixed (traversal) order,
    the same for the same architecture. Keras weight files do not hold their state."""
    return [
        generator
        for layer in layers
        for sub in layer._flatten_layers(include_self=True)
        for generator in getattr(sub, "_seed_generators", []) or []
    ]
