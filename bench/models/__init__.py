"""Benchmark models built here (random weights, no downloads): see cnn.py."""
