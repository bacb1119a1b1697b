"""The LSTM keyword spotter of the zoo end to end: torch -> edgekit float (equal to
torch), int8 (bit-exact with TFLM on the host), C for cortex-m7 (equal to the reference)."""

from __future__ import annotations

import pytest

from tests.zoo import lstm_kws as zoo
from tests.zoo.checks import check_c_cortex_m7, check_recurrent_float_matches_torch, check_recurrent_int8

pytest.importorskip("torch")


def test_lstm_kws_float_matches_torch():
    check_recurrent_float_matches_torch(zoo)


def test_lstm_kws_int8_bit_exact_with_tflm_and_compiles_for_cortex_m7(tmp_path):
    q, xi, ours = check_recurrent_int8(zoo)
    check_c_cortex_m7(q, xi, ours, tmp_path)
