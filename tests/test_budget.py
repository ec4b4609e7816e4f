"""The budget search (evaluation/budget.py) and victim selection on tiny torch models."""

import numpy as np
import pytest
import torch

from advaudio.errors import ConfigError, DataError
from advaudio.evaluation.budget import budget_search
from advaudio.evaluation.victims import select_victims
from toy_attack_models import LADDERS, SHAPE, ConstantModel, NoGradModel, band_model, run, smooth_model, victims


def test_cw_finds_smaller_perturbations_than_bim_b():
    model = smooth_model()
    x, y, t = victims(model, n=8)
    cw = run("cw", model, x, y, t)
    bim = run("bim_b", model, x, y, t, ladder=[{"epsilon": 3.0, "steps": 10, "rel_stepsize": 0.25}])
    both = cw.success & bim.success
    assert both.sum() >= 4
    assert cw.l2[both].mean() < bim.l2[both].mean()


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_every_attack_fools_verified_stays_in_range_and_is_seeded(name):
    model = smooth_model()
    x, y, t = victims(model, n=8)
    r1 = run(name, model, x, y, t)
    r2 = run(name, model, x, y, t)
    assert r1.fooling_rate >= 0.5, (name, r1.fooling_rate)
    assert r1.adv.min() >= 0 and r1.adv.max() <= 1 and not np.isnan(r1.adv).any()
    with torch.no_grad():
        pred = model(torch.from_numpy(r1.adv)).argmax(1).numpy()
    goal = y.numpy() if name == "deepfool" else t.numpy()
    hit = pred != goal if name == "deepfool" else pred == goal
    np.testing.assert_array_equal(hit, r1.success)
    np.testing.assert_array_equal(r1.l2, r2.l2)
    np.testing.assert_array_equal(r1.adv, r2.adv)
    assert (r1.queries > 0) if name == "pia" else (r1.gradient_calls > 0)


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_bounded_attacks_never_exceed_bound(name):
    model = smooth_model()
    x, y, t = victims(model, n=6)
    r = run(name, model, x, y, t, bound=0.3)
    norms = np.linalg.norm((r.adv - x.numpy()).reshape(len(x), -1), axis=1)
    assert (norms <= 0.3 + 1e-5).all()
    assert (r.l2[r.success] <= 0.3 + 1e-5).all()


@pytest.mark.parametrize("name", sorted(LADDERS))
def test_constant_model_is_never_fooled(name):
    model = ConstantModel().eval()
    x = torch.rand((4, *SHAPE))
    y = torch.zeros(4, dtype=torch.long)
    t = torch.tensor([1, 2, 3, 1])
    r = run(name, model, x, y, t)
    assert not r.success.any() and np.isinf(r.l2).all()
    assert r.level == len(LADDERS[name])


def test_pia_never_touches_gradients():
    model = NoGradModel(smooth_model()).eval()
    x, y, t = victims(model, n=4)
    r = run("pia", model, x, y, t)
    assert r.fooling_rate > 0 and r.gradient_calls == 0 and r.queries > 0


def test_budget_search_keeps_fooled_victims_out_of_later_rungs():
    model = smooth_model()
    x, y, t = victims(model, n=8)
    ladder = [{"epsilon": 0.5, "steps": 10, "rel_stepsize": 0.25}, {"epsilon": 3.0, "steps": 10, "rel_stepsize": 0.25}]
    r = run("bim_b", model, x, y, t, ladder=ladder)
    first = run("bim_b", model, x, y, t, ladder=ladder[:1])
    assert r.fr_per_level[0] == first.fooling_rate and r.fr_per_level == sorted(r.fr_per_level)
    assert r.gradient_calls == 10 * len(x) + 10 * int((~first.success).sum())
    np.testing.assert_array_equal(r.l2[first.success], first.l2[first.success])


def test_budget_search_rejects_bad_rungs():
    model = smooth_model()
    x, y, t = victims(model, n=2)
    with pytest.raises(ConfigError, match="needs an 'epsilon'"):
        run("bim_b", model, x, y, t, ladder=[{"steps": 3}])
    with pytest.raises(ConfigError, match="rung 1"):
        run("cw", model, x, y, t, ladder=[{"cc": 3}])
    with pytest.raises(ConfigError, match="empty"):
        budget_search(name="cw", model=model, x=x, labels=y, targets=t, ladder=[], target_fooling_rate=0.9, batch_size=2)


def test_select_victims_is_stratified_seeded_and_targets_are_wrong(rng):
    labels = np.repeat(np.arange(5), 10)
    preds = labels.copy()
    preds[::3] = (preds[::3] + 1) % 5  # some misclassified
    rows, targets = select_victims(labels=labels, predictions=preds, n_victims=10, n_classes=5, seed=7)
    rows2, targets2 = select_victims(labels=labels, predictions=preds, n_victims=10, n_classes=5, seed=7)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_array_equal(targets, targets2)
    assert (labels[rows] == preds[rows]).all()
    assert np.bincount(labels[rows], minlength=5).tolist() == [2] * 5
    assert (targets != labels[rows]).all() and targets.min() >= 0 and targets.max() < 5
    with pytest.raises(DataError, match="no test sample"):
        select_victims(labels=labels, predictions=(labels + 1) % 5, n_victims=3, n_classes=5, seed=0)


def test_gradients_are_counted_on_the_model_even_for_an_attack_that_says_it_is_black_box(monkeypatch):
    from advaudio.attacks import ATTACKS
    from advaudio.evaluation.sanity import blackbox_queries_only

    monkeypatch.setattr(ATTACKS.get("bim_b"), "black_box", True)  # a white-box attack mislabelled
    model = smooth_model()
    x, y, t = victims(model, n=4)
    r = run("bim_b", model, x, y, t, ladder=[{"epsilon": 1.0, "steps": 5, "rel_stepsize": 0.25}])
    assert r.black_box and r.gradient_calls == 5 * len(x)
    assert not blackbox_queries_only({"bim_b": r})


def test_black_box_queries_equal_the_models_forward_samples():
    from advaudio.evaluation.sanity import blackbox_queries_only

    model = smooth_model()
    x, y, t = victims(model, n=4)
    r = run("pia", model, x, y, t)
    # the model saw the queries PIA reports and foolbox's one success check per victim, nothing else
    assert r.black_box and r.queries > 0 and r.gradient_calls == 0 and r.success_checks == len(x) * r.level
    assert r.forward_calls == r.queries + r.success_checks
    assert blackbox_queries_only({"pia": r})



@pytest.mark.parametrize("name, ladder, bound, cost", [
    # within a bound of 0.3 both BIM rungs become epsilon 0.3 with 5 steps: the second would fail the same victims
    ("bim_b", [{"epsilon": e, "steps": 5, "rel_stepsize": 0.25} for e in (1.0, 2.0)], 0.3, "gradient_calls"),
    # bounded, both PIA rungs get the bound as their goal: identical settings, only the seed would differ
    ("pia", [{"epsilon": e, "steps": 8, "samples": 10} for e in (0.3, 0.6)], 0.05, "queries"),
])
def test_a_rung_repeating_an_earlier_one_is_not_run_again(name, ladder, bound, cost):
    model = smooth_model()
    x, y, t = victims(model, n=6)
    both = run(name, model, x, y, t, ladder=ladder, bound=bound)
    first = run(name, model, x, y, t, ladder=ladder[:1], bound=bound)
    assert first.fooling_rate < 1 and both.level == 2 and both.fr_per_level == first.fr_per_level * 2
    assert getattr(both, cost) == getattr(first, cost)  # the repeated rung cost nothing
    np.testing.assert_array_equal(both.adv, first.adv)


def test_a_streamed_reader_pool_gives_the_tensor_pools_search(tmp_path):
    from advaudio.evaluation.pool_source import ReaderPool
    from advaudio.features.store import open_features
    from advaudio.training.fake_features import write_fake_features

    # the pool: a real test split, stored at 9 x 8 in shards of 7 and resized to 6 x 6 when read
    pool = open_features(write_fake_features(tmp_path, sources_per_class=16, size=SHAPE[1:], native_size=(9, 8),
                                             clips_per_shard=7)).test
    model = band_model()
    pool_x = pool.load()
    with torch.no_grad():
        reachable = sorted(set(model(pool_x).argmax(1).tolist()))
    assert len(reachable) >= 3
    x = (0.3 + 0.4 * torch.rand((6, *SHAPE), generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        y = model(x).argmax(1)
    t = torch.tensor([next(c for c in reachable[i % len(reachable):] + reachable if c != int(label))
                      for i, label in enumerate(y)])
    ladder = [{"epsilon": e, "steps": 15, "samples": 10, "lr": 0.05, "chunk": 3} for e in (0.02, 0.3)]

    def search(starting_pool):
        return budget_search(name="pia", model=model, x=x, labels=y, targets=t, ladder=ladder, target_fooling_rate=1.0,
                             batch_size=4, starting_pool=starting_pool, seed=7)

    expected, got = search(pool_x), search(ReaderPool(pool, batch_size=4))  # batches of 6: 4 up to 2 x chunk
    assert expected.level == 2 and expected.queries > 2 * len(pool)  # both rungs ran (the pool classified once)
    np.testing.assert_array_equal(got.adv, expected.adv)
    np.testing.assert_array_equal(got.l2, expected.l2)
    np.testing.assert_array_equal(got.success, expected.success)
    assert (got.queries, got.forward_calls, got.gradient_calls) == (expected.queries, expected.forward_calls, 0)
    assert got.fr_per_level == expected.fr_per_level


def test_the_starting_pool_is_classified_once_per_search_and_not_again_on_resume(tmp_path):
    from toy_attack_models import POOL

    from advaudio.evaluation.search_state import read_search_state, write_search_state
    from advaudio.resume import ResumeFolder

    passes: list[int] = []

    class CountedPool:  # a PoolSource over POOL that records each full pass over it
        def __len__(self):
            return len(POOL)

        def image_batches(self, *, multiple_of, device):
            passes.append(1)
            size = 64 * multiple_of
            return [POOL[i : i + size].to(device) for i in range(0, len(POOL), size)]

        def read(self, rows, *, device):
            return POOL[torch.from_numpy(rows)].to(device)

    model = smooth_model()
    x, y, t = victims(model, n=6)
    ladder = [{"epsilon": e, "steps": 20, "samples": 20, "lr": 0.05} for e in (0.05, 0.2, 0.5)]
    states = []
    full = run("pia", model, x, y, t, ladder=ladder, starting_pool=CountedPool(), on_rung=states.append)
    assert full.level >= 2 and len(states) >= 2
    assert passes == [1]  # one classification for every rung
    store = ResumeFolder(tmp_path / "attack@original", inputs={}, then="-")
    store.save("pia.npz", lambda fh: write_search_state(fh, states[0]))
    saved = store.load("pia.npz", lambda path: read_search_state(path, name="pia", shape=tuple(x.shape),
                                                                  n_levels=len(ladder)))
    np.testing.assert_array_equal(saved.pool_top1, states[0].pool_top1)
    assert saved.pool_top1.shape == (len(POOL),)
    passes.clear()
    resumed = run("pia", model, x, y, t, ladder=ladder, starting_pool=CountedPool(), resume=saved)
    assert passes == []  # the saved classes are reused: no query repeated
    assert (resumed.queries, resumed.forward_calls, resumed.level) == (full.queries, full.forward_calls, full.level)
    np.testing.assert_array_equal(resumed.adv, full.adv)
