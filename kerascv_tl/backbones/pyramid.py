"""Feature-pyramid adapter: any registry conv backbone as a KerasHub image encoder.

KerasHub's detection and segmentation backbones (RetinaNetBackbone, DeepLabV3) take an `image_encoder`
exposing `pyramid_outputs = {"P3": ..., "P4": ..., "P5": ...}`. keras.applications models do not, so
`PyramidEncoder` taps the registry's stride-8/16/32 layers and exposes them under those names. The
encoder takes RGB pixels in [0, 255]; the backbone's normalisation is its first layer, as in the
classifier.
"""

from __future__ import annotations

import keras

from kerascv_tl.backbones.preprocessing import ImagePreprocessing

LEVEL_OF_STRIDE = {8: "P3", 16: "P4", 32: "P5"}


@keras.saving.register_keras_serializable(package="kerascv_tl")
class PyramidEncoder(keras.Model):
    """Pixels [B, H, W, 3] in [0, 255] -> {"P3", "P4", "P5"} feature maps of a conv backbone.

    The tapped backbone is the nested model named "features" (its layers keep their keras.applications
    names, so `backbone_blocks` and the freeze helpers work on it).
    """

    def __init__(self, backbone: keras.Model, pyramid_layers: dict, preprocessing: dict, **kwargs):
        taps = {LEVEL_OF_STRIDE[int(stride)]: name for stride, name in pyramid_layers.items()}
        features = keras.Model(backbone.input, {level: backbone.get_layer(name).output for level, name in taps.items()},
                               name="features")
        inputs = keras.Input(shape=backbone.input_shape[1:], name="images")
        x = ImagePreprocessing(**preprocessing, name="preprocessing")(inputs)
        outputs = features(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.pyramid_layers = {int(k): v for k, v in pyramid_layers.items()}
        self.preprocessing = dict(preprocessing)
        self.pyramid_outputs = outputs

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "pyramid_layers": {str(k): v for k, v in self.pyramid_layers.items()},
            "preprocessing": self.preprocessing,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)


def pyramid_encoder(backbone) -> PyramidEncoder:
    """A built `kerascv_tl.backbones.Backbone` -> `PyramidEncoder`; single-scale nets (ViT) are refused."""
    if not backbone.pyramid_strides:
        raise ValueError(f"{backbone.name} has a single feature scale (no stride 8/16/32 pyramid); "
                         "detection and segmentation need a convolutional backbone")
    pre = backbone.preprocessing
    preprocessing = {"scale": pre.scale, "mean": list(pre.mean), "std": list(pre.std), "channel_order": pre.channel_order}
    return PyramidEncoder(backbone.model, backbone.pyramid_layers, preprocessing, name="pyramid_encoder")
