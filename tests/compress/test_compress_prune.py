"""Structured pruning: conv, depthwise, residual (add) and linear layers; the pruned
model runs, shrinks by the expected amount and matches its own edgekit import; every
importance criterion; targets by MACs, parameters and SRAM; whole-layer ratios refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from edgekit.compress import prune as pr  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.frontends.torch_importer import load_torch  # noqa: E402
from edgekit.ir.stats import graph_stats  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.compress import models as tm  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

# factory -> {group key: channels before pruning}
MODELS = {
    "conv_bn": {("bn1", "conv1"): 16, ("conv2",): 32},
    "depthwise": {("bn0", "bn1", "dw", "stem"): 16, ("pw",): 32},
    "residual": {("a2", "b2", "stem"): 16, ("a1",): 24, ("b1",): 24, ("head",): 32},
    "mlp": {("fc1",): 64, ("fc2",): 32},
}


def _build(name):
    m = getattr(tm, name)()
    return m, (torch.randn(*m.input_shape),)


def _assert_matches_export(model, example, seed=0):
    graph = load_torch(model, example_inputs=example)
    x = torch.randn(6, *example[0].shape[1:], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model(x).numpy()
    got = Interpreter(graph).run([x.numpy()], layout="source")[graph.outputs[0]]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    return graph


@pytest.mark.parametrize("name", list(MODELS))
def test_groups_found_and_output_layer_kept(name):
    model, ex = _build(name)
    assert pr.group_channels(model, ex) == MODELS[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_prune_half_runs_shrinks_and_matches_export(name):
    model, ex = _build(name)
    before_params, before_macs = pr.count_params(model), pr.count_macs(model, ex)
    g0 = load_torch(model, example_inputs=ex)
    pruned, step = pr.prune(model, ex, 0.5)
    # every group keeps exactly int(C * 0.5) channels
    assert step.channels == {k: c // 2 for k, c in MODELS[name].items()}
    assert pr.group_channels(pruned, ex) == step.channels
    with torch.no_grad():
        out = pruned(ex[0])
    assert out.shape == model(ex[0]).shape  # the output layer was not pruned
    params, macs = pr.count_params(pruned), pr.count_macs(pruned, ex)
    # halving both sides of inner layers: between a quarter and a half of the MACs remain
    assert 0.2 * before_macs < macs < 0.55 * before_macs, (macs, before_macs)
    assert 0.2 * before_params < params < 0.6 * before_params, (params, before_params)
    graph = _assert_matches_export(pruned, ex)
    # edgekit's own count agrees with the torch-side count on conv / linear MACs
    assert graph_stats(graph).macs == macs
    assert graph_stats(graph).macs < graph_stats(g0).macs
    assert model(ex[0]).shape == out.shape and pr.group_channels(model, ex) == MODELS[name]  # original untouched


def test_depthwise_and_residual_layers_shrink_together():
    model, ex = _build("depthwise")
    pruned, _ = pr.prune(model, ex, 0.5)
    assert pruned.dw.in_channels == pruned.dw.out_channels == pruned.dw.groups == 8
    assert pruned.pw.in_channels == 8 and pruned.bn1.num_features == 8
    model, ex = _build("residual")
    pruned, _ = pr.prune(model, ex, 0.25)
    assert pruned.stem.out_channels == pruned.a2.out_channels == pruned.b2.out_channels == 12
    assert pruned.a1.out_channels == pruned.a2.in_channels == 18


@pytest.mark.parametrize("name", ["conv_bn", "residual"])
def test_global_pruning_keeps_the_total_and_every_layer(name):
    model, ex = _build(name)
    total = sum(MODELS[name].values())
    pruned, step = pr.prune(model, ex, 0.5, global_pruning=True)
    assert sum(step.channels.values()) == total // 2
    assert all(c >= max(1, int(np.ceil(MODELS[name][k] * pr.GLOBAL_MIN_KEEP))) for k, c in step.channels.items())
    _assert_matches_export(pruned, ex)


def _grad_fn(ex_shape, n_out=10):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, *ex_shape[1:], generator=gen)
    y = torch.randint(0, n_out, (32,), generator=gen)

    def fn(m):
        pr.accumulate_gradients(m, lambda mm, b: torch.nn.functional.cross_entropy(mm(b[0]), b[1]), [(x, y)])
    return fn


@pytest.mark.parametrize("importance", ["magnitude", "l1", "l2", "taylor", "bn"])
def test_every_importance_criterion(importance):
    model, ex = _build("conv_bn")
    pruned, step = pr.prune(model, ex, 0.5, importance=importance, grad_fn=_grad_fn(ex[0].shape))
    if importance == "bn":
        # only the group with a batch norm is scored by BN scale
        assert step.channels[("bn1", "conv1")] == 8 and step.channels[("conv2",)] == 32
    else:
        assert step.channels == {("bn1", "conv1"): 8, ("conv2",): 16}
    _assert_matches_export(pruned, ex)


def test_importance_criteria_pick_different_channels():
    model, ex = _build("conv_bn")
    picks = {}
    for imp in ("l1", "taylor", "bn"):
        _, step = pr.prune(model, ex, 0.5, importance=imp, grad_fn=_grad_fn(ex[0].shape))
        picks[imp] = sorted(step.history[0][2])
    assert len({tuple(v) for v in picks.values()}) > 1


def test_bn_importance_without_batch_norm_is_a_clear_error():
    model, ex = _build("mlp")
    with pytest.raises(BadInputError, match="no prunable layer is followed by BatchNorm"):
        pr.prune(model, ex, 0.5, importance="bn")


def test_taylor_without_data_is_a_clear_error():
    model, ex = _build("mlp")
    with pytest.raises(BadInputError, match="Taylor importance needs gradients"):
        pr.prune(model, ex, 0.5, importance="taylor")


@pytest.mark.parametrize("ratio", [1.0, 0.99, 1.5, -0.1, float("nan")])
def test_ratio_that_removes_a_whole_layer_is_refused(ratio):
    model, ex = _build("conv_bn")
    with pytest.raises(BadInputError, match=r"ratio|whole layer"):
        pr.prune(model, ex, ratio)


def test_whole_layer_message_names_layer_and_largest_ratio():
    model, ex = _build("conv_bn")
    with pytest.raises(BadInputError) as e:
        pr.prune(model, ex, 0.97)
    msg = str(e.value)
    assert "whole layer" in msg and "conv1" in msg and "0.9375" in msg


def test_replay_rebuilds_the_pruned_architecture():
    model, ex = _build("residual")
    pruned, step = pr.prune(model, ex, 0.5)
    again = tm.residual()
    pr.replay(again, step.history, ex)
    again.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        assert torch.equal(again(ex[0]), pruned(ex[0]))


@pytest.mark.parametrize("kind", ["macs", "params"])
@pytest.mark.parametrize("global_pruning", [False, True])
def test_target_by_macs_and_params_is_reached(kind, global_pruning):
    model, ex = _build("residual")
    measure = pr.make_measure(kind, ex)
    goal = measure(model) * 0.4
    r = pr.find_ratio(model, ex, measure, goal, global_pruning=global_pruning)
    pruned, _ = pr.prune(model, ex, r, global_pruning=global_pruning)
    assert measure(pruned) <= goal
    # and not much more than needed: a clearly smaller ratio misses the target
    if r > 0.05:
        smaller, _ = pr.prune(model, ex, max(r - 0.05, 0.0), global_pruning=global_pruning)
        assert measure(smaller) > goal
    if kind == "macs":
        assert graph_stats(load_torch(pruned, example_inputs=ex)).macs <= goal


def test_target_by_sram_uses_the_planned_int8_arena():
    model, ex = _build("conv_bn")
    before = pr.int8_costs(model, ex)
    assert before.precision == "int8" and before.arena_bytes > 0
    goal = before.arena_bytes * 0.7
    measure = pr.make_measure("sram", ex)
    r = pr.find_ratio(model, ex, measure, goal)
    assert r > 0
    pruned, _ = pr.prune(model, ex, r)
    after = pr.int8_costs(pruned, ex)
    assert after.arena_bytes <= goal
    assert after.flash_bytes < before.flash_bytes


def test_unreachable_target_is_a_clear_error():
    model, ex = _build("mlp")
    with pytest.raises(BadInputError, match="cannot reach the target"):
        pr.find_ratio(model, ex, pr.make_measure("params", ex), 10, what="params")


def test_already_small_enough_needs_no_pruning():
    model, ex = _build("mlp")
    assert pr.find_ratio(model, ex, pr.make_measure("params", ex), 10 ** 9) == 0.0


def test_model_without_prunable_layers():
    lin = torch.nn.Linear(4, 3).eval()
    with pytest.raises(BadInputError, match="no prunable layers"):
        pr.prune(lin, (torch.randn(1, 4),), 0.5)


def test_prune_does_not_modify_the_input_model():
    model, ex = _build("conv_bn")
    before = copy.deepcopy(model.state_dict())
    pr.prune(model, ex, 0.5, importance="taylor", grad_fn=_grad_fn(ex[0].shape))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_per_layer_ratios():
    model, ex = _build("residual")
    pruned, step = pr.prune(model, ex, 0.0, layer_ratios={"a1": 0.75, "stem": 0.5})
    assert step.channels == {("a2", "b2", "stem"): 8, ("a1",): 6, ("b1",): 24, ("head",): 32}
    _assert_matches_export(pruned, ex)
    with pytest.raises(BadInputError, match="'conv9': not a prunable layer; prunable layers: a1, a2, b1"):
        pr.prune(model, ex, 0.5, layer_ratios={"conv9": 0.5})
    with pytest.raises(BadInputError, match="pruned together .* different ratios 0.5 and 0.25"):
        pr.prune(model, ex, 0.0, layer_ratios={"a2": 0.5, "b2": 0.25})
    with pytest.raises(BadInputError, match="whole layer 'a1'"):
        pr.prune(model, ex, 0.0, layer_ratios={"a1": 0.99})


def test_unreachable_memory_budget_names_its_unit():
    # `--sram 16B` used to answer "cannot reach the target sram 16: ... leaves 2,048": bytes, said.
    model, ex = _build("conv_bn")
    with pytest.raises(BadInputError, match=r"cannot reach the target sram 16 bytes: .* leaves [\d,]+ bytes$"):
        pr.find_ratio(model, ex, pr.make_measure("sram", ex), 16, what="sram")


def test_unreachable_share_of_a_memory_budget_says_what_it_counts():
    # The pipeline's memory budgets measure the worst share of a budget (1.0 = fits).
    model, ex = _build("conv_bn")
    sram = pr.make_measure("sram", ex)
    with pytest.raises(BadInputError, match=r"cannot fit the memory budget \(--sram/--flash\): .* leaves "
                                            r"[\d.]+x the budget \(planned int8 arena / SRAM budget"):
        pr.find_ratio(model, ex, lambda m: sram(m) / 16, 1.0, what="memory (share of the budget)")
