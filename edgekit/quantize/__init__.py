"""Post-training int8 quantization (the TFLite int8 scheme TFLite Micro runs).

    ds = load_dataset("calib.npz", input_shape=(1, 49, 10, 1))
    result = quantize(graph, ds.x, method="auto")   # result.graph is the int8 graph

- ``data``: calibration/evaluation data loading, preprocessing and validation;
- ``histogram``: streaming per-tensor histograms and the range estimators;
- ``calibrate``: runs the float graph and turns statistics into ranges;
- ``auto_select``: per-tensor choice of the estimator by model-output error;
- ``scheme``: the int8 rules (weights, biases, activations, fixed and shared params);
- ``plan``: which parameters each activation tensor gets;
- ``bias_correction``: empirical bias correction of weight rounding;
- ``quantizer``: builds the int8 graph.
"""

from edgekit.quantize.calibrate import METHODS, Range, calibrate, collect_stats
from edgekit.quantize.data import Dataset, FewSamplesWarning, load_dataset
from edgekit.quantize.quantizer import QuantizeResult, prepare_float_graph, quantize

__all__ = ["METHODS", "Dataset", "FewSamplesWarning", "QuantizeResult", "Range", "calibrate", "collect_stats",
           "load_dataset", "prepare_float_graph", "quantize"]
