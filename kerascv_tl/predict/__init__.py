"""Predict with a trained model: `load_predictor(path).predict(inputs)` in Python, `kerascv-tl predict` on the
command line. Both run images through an exported SavedModel's `serving_default` (a run folder is exported
first) and report each image as its task's result dict (`Task.prediction_rows`).

    import kerascv_tl
    predictor = kerascv_tl.load_predictor("saved_models/flowers")   # or a run folder, e.g. runs/flowers
    for result in predictor.predict(["a.jpg", "b.jpg"]):
        print(result["path"], result["labels"][0], result["scores"][0])

`predictor.py` holds the Predictor, `inputs.py` how paths, bytes and arrays become encoded images (and the
command line's PATH expansion), `writers.py` the CSV and JSONL files.
"""

from kerascv_tl.predict.inputs import expand_paths
from kerascv_tl.predict.predictor import PredictionResult, Predictor, load_predictor

__all__ = ["PredictionResult", "Predictor", "expand_paths", "load_predictor"]
