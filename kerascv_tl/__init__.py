"""kerascv-tl: transfer learning for computer vision on Keras 3 + TensorFlow."""

__version__ = "0.1.0"
