"""Hardware-in-the-loop rig: flash a model, run vectors on the device, compare with the
reference interpreter bit for bit, report (JUnit XML, JSON)."""

from edgekit.hil.report import junit_tree, write_json, write_junit
from edgekit.hil.rig import HilResult, Mismatch, prepare_inputs, reference_outputs, run_hil

__all__ = ["HilResult", "Mismatch", "junit_tree", "prepare_inputs", "reference_outputs", "run_hil",
           "write_json", "write_junit"]
