import math

import pytest

from resnetkit.data.sampling import BatchOrder, epoch_order
from resnetkit.engine.config import make_config
from resnetkit.engine.schedule import lr_factor


def test_step_schedule():
    f = [lr_factor(s, 10, 90, "step", step_size=30) for s in (0, 299, 300, 600, 899)]
    assert f == pytest.approx([1, 1, 0.1, 0.01, 0.01])


def test_cosine_with_warmup():
    assert lr_factor(0, 10, 10, "cosine", warmup_epochs=2) == pytest.approx(0.01)
    assert lr_factor(20, 10, 10, "cosine", warmup_epochs=2) == pytest.approx(1.0)
    assert lr_factor(60, 10, 10, "cosine", warmup_epochs=2) == pytest.approx(0.5)
    assert lr_factor(100, 10, 10, "cosine", warmup_epochs=2) == pytest.approx(0.0)


def test_onecycle_rises_then_anneals():
    values = [lr_factor(s, 10, 10, "onecycle") for s in range(100)]
    peak = values.index(max(values))
    assert peak == 30 and values[0] == pytest.approx(1 / 25)
    assert values[-1] < 1e-3
    assert all(a <= b for a, b in zip(values[:peak], values[1 : peak + 1]))


def test_batch_order_union_over_ranks_is_single_process_batch():
    single = BatchOrder(50, 8, seed=3, shuffle=True, drop_last=True)
    ranks = [BatchOrder(50, 8, seed=3, shuffle=True, drop_last=True, rank=r, world=2) for r in range(2)]
    for o in [single, *ranks]:
        o.set_epoch(4)
    for whole, a, b in zip(single, *ranks):
        assert whole == a + b
    assert len(single) == 6


def test_batch_order_resume_skips_done_batches():
    o = BatchOrder(40, 8, seed=0, shuffle=True, drop_last=False)
    o.set_epoch(2)
    full = list(o)
    o.set_epoch(2, start_batch=3)
    assert list(o) == full[3:]


def test_epoch_orders_differ_and_repeat_aug_keeps_length():
    assert epoch_order(100, 0, 0, True) != epoch_order(100, 0, 1, True)
    rep = epoch_order(100, 0, 0, True, repeats=4)
    assert len(rep) == 100 and len(set(rep)) == math.ceil(100 / 4)


def test_batch_not_divisible_by_world():
    with pytest.raises(ValueError, match="divisible"):
        BatchOrder(10, 5, seed=0, shuffle=True, drop_last=True, world=2)


def test_recipes_and_overrides():
    cfg = make_config("tv-v2", lr=0.1)
    assert cfg.lr == 0.1 and cfg.epochs == 600 and cfg.mixup_alpha == 0.2 and cfg.ema and cfg.repeated_aug == 4
    assert make_config("tv-v1").schedule == "step"
    with pytest.raises(ValueError, match="optimizer"):
        make_config(optimizer="adam")
    with pytest.raises(ValueError, match="warmup"):
        make_config("tv-v2", epochs=2)


def test_a_run_too_short_for_its_schedule_says_so_in_one_line():
    from resnetkit.engine.config import make_config
    from resnetkit.engine.setup import warn_short_run

    said = []
    warn_short_run(make_config("digits", epochs=1), 22, said.append)
    assert len(said) == 1 and "--epochs 3 or more" in said[0] and "near chance" in said[0]
    for cfg in (make_config("digits", epochs=3), make_config("digits", epochs=1, schedule="constant")):
        warn_short_run(cfg, 22, said.append)
    assert len(said) == 1


def test_layer_wise_lr_decay_scales_each_stage_from_the_classifier_down():
    import resnetkit as rk
    from resnetkit.engine.setup import param_groups
    from resnetkit.errors import InvalidOption

    for arch, stem, stages, head in (
        ("resnet18", "conv1.weight", ["layer1.0.conv1.weight", "layer4.1.bn2.bias"], "fc.weight"),
        ("resnetv2_18", "stem.conv.weight", ["stages.0.blocks.0.conv1.weight", "stages.3.blocks.1.conv2.weight"],
         "head.fc.weight"),
    ):  # fmt: skip
        model = rk.create_model(arch, num_classes=10)
        groups = param_groups(model, make_config("digits", lr=0.8, layer_decay=0.5, backbone_lr_scale=0.5))
        lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
        named = dict(model.named_parameters())
        assert lr_of[id(named[head])] == 0.8  # the classifier: neither scale applies
        assert lr_of[id(named[stages[1]])] == 0.8 * 0.5 * 0.5  # the last stage: one decay, the backbone scale
        assert lr_of[id(named[stages[0]])] == 0.8 * 0.5 * 0.5**4
        assert lr_of[id(named[stem])] == 0.8 * 0.5 * 0.5**5
        assert sum(len(g["params"]) for g in groups) == len(named)
    with pytest.raises(InvalidOption, match="layer_decay must be in"):
        make_config("digits", layer_decay=1.5)
