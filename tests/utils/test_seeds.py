import keras

from kerascv_tl.utils.seeds import seed_generators


def test_finds_every_generator_in_layers_and_sublayers_in_a_stable_order():
    flip, augment = keras.layers.RandomFlip(seed=1), keras.layers.RandAugment(value_range=(0, 255), seed=2)
    found = seed_generators(flip, augment)
    assert found[0] is flip._seed_generators[0]
    assert len(found) == 1 + len(seed_generators(augment)) and len(seed_generators(augment)) > 1
    assert [g.state.numpy()[0] for g in found] == [1] + [2] * (len(found) - 1)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=7)(keras.layers.Dropout(0.5, seed=3)(inputs)))
    assert [int(g.state.numpy()[0]) for g in seed_generators(model)] == [3, 7]
