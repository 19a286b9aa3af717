"""A `.keras` file carrying Python code (a Lambda layer) is refused, naming the file."""

from __future__ import annotations

import keras
import pytest

from kerascv_tl.utils.model_files import UnsafeModelError, load_keras_model


def test_a_lambda_layer_is_refused_and_a_plain_model_loads(tmp_path):
    inputs = keras.Input((3,))
    hostile = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))  # could be os.system(...)
    hostile.save(tmp_path / "hostile.keras")
    with pytest.raises(UnsafeModelError, match=r"hostile\.keras: refused to load: it holds a Lambda layer"):
        load_keras_model(tmp_path / "hostile.keras")
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    plain.save(tmp_path / "plain.keras")
    assert load_keras_model(tmp_path / "plain.keras").output_shape == (None, 2)
