"""Test helpers: shared test data and the TFLite/TFLM oracles."""
