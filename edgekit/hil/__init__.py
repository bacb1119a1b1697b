"""Hardware-in-the-loop rig: flash a model, run vectors on the device, compare with the
reference interpreter bit for bit, report (JUnit XML, JSON, HTML), and per-op profiles
(run_hil(..., profile=True))."""

from edgekit.hil.profile import OpProfile, build_profile, timed_ops
from edgekit.hil.report import html_report, junit_tree, write_json, write_junit
from edgekit.hil.rig import HilResult, Mismatch, prepare_inputs, reference_outputs, run_hil

__all__ = ["HilResult", "Mismatch", "OpProfile", "build_profile", "html_report", "junit_tree", "prepare_inputs",
           "reference_outputs", "run_hil", "timed_ops", "write_json", "write_junit"]
