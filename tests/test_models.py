"""Victim networks: every registered model at the smallest and default size, ResNet-56's known size,
checkpoint round trip, pretrained weights only from disk, and clear errors."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from advaudio.errors import ConfigError, DataError
from advaudio.models import MIN_INPUT_SIZE, MODELS, build_model, count_parameters
from advaudio.models.checkpoint import check_matches_features, load_checkpoint, make_config, save_checkpoint
from advaudio.models.torchvision_models import _fold_head_weight
from test_loading import overwrite_in_zip

DEFAULT_SHAPE = (1, 32, 32)
SIZES = [(1, MIN_INPUT_SIZE, MIN_INPUT_SIZE), DEFAULT_SHAPE, (1, 48, 20)]


def test_registry_holds_the_six_study_models():
    assert MODELS.names() == ["alexnet", "googlenet", "resnet18", "resnet34", "resnet56", "vgg16"]


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[1]}x{s[2]}")
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward_finite(name, shape):
    torch.set_num_threads(1)
    model = build_model(name, n_classes=7, input_shape=shape).train()
    x = torch.rand(3, *shape, requires_grad=True)
    logits = model(x)
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_resnet56_has_56_layers_and_the_papers_parameter_count():
    model = build_model("resnet56", n_classes=10, input_shape=DEFAULT_SHAPE)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 56
    # Closed form for option A: stem conv + BN, 27 blocks of two 3x3 conv + BN, the first of stages 2-3
    # widening, and the classifier; shortcuts add nothing.
    expected = 9 * 16 + 2 * 16
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(9):
            expected += 9 * c_in * c + 9 * c * c + 4 * c
            c_in = c
    expected += 64 * 10 + 10
    assert count_parameters(model) == expected
    assert 0.84e6 < expected < 0.86e6  # He et al. 2016, Table 6: 0.85 M


def test_googlenet_has_no_aux_heads_and_small_inputs_are_upsampled():
    model = build_model("googlenet", n_classes=5, input_shape=(1, 8, 8))
    assert model.body.aux1 is None and model.body.aux2 is None
    assert model.adapter(torch.rand(1, 1, 8, 8)).shape[-2:] == (15, 15)
    alex = build_model("alexnet", n_classes=5, input_shape=(1, 100, 20))
    assert alex.adapter(torch.rand(1, 1, 100, 20)).shape[-2:] == (100, 63)


def test_head_fold_is_exact():
    # A linear layer on the 7x7-pooled map equals the folded layer on the smaller pooled map.
    torch.manual_seed(0)
    for fh, fw in [(1, 1), (2, 3), (7, 9)]:
        feats = torch.randn(2, 5, fh, fw)
        pool = (min(7, fh), min(7, fw))
        weight = torch.randn(4, 5 * 49)
        ref = torch.nn.functional.adaptive_avg_pool2d(feats, 7).flatten(1) @ weight.T
        folded = _fold_head_weight(weight, orig_pool=(7, 7), pool=pool, channels=5)
        out = torch.nn.functional.adaptive_avg_pool2d(feats, pool).flatten(1) @ folded.T
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_pretrained_without_cached_weights_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="not on disk"):
        build_model("resnet18", n_classes=10, input_shape=DEFAULT_SHAPE, pretrained=True)
    with pytest.raises(ConfigError, match="resnet56"):
        build_model("resnet56", n_classes=10, input_shape=DEFAULT_SHAPE, pretrained=True)


def test_pretrained_loads_cached_weights_averaging_rgb(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = resnet18(weights=None)
    path = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[1]
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18", n_classes=10, input_shape=DEFAULT_SHAPE, pretrained=True)
    torch.testing.assert_close(model.body.conv1.weight, reference.conv1.weight.mean(1, keepdim=True))
    torch.testing.assert_close(model.body.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert model.body.fc.out_features == 10


def test_unknown_model_and_bad_shapes_fail_with_the_allowed_set():
    with pytest.raises(ConfigError, match=r"unknown model 'resnet57'; choose from \['alexnet'"):
        build_model("resnet57", n_classes=10, input_shape=DEFAULT_SHAPE)
    with pytest.raises(ConfigError, match="H, W >= 8"):
        build_model("resnet56", n_classes=10, input_shape=(1, 4, 32))
    with pytest.raises(ConfigError, match="n_classes"):
        build_model("resnet56", n_classes=1, input_shape=DEFAULT_SHAPE)


@pytest.mark.parametrize("name", ["resnet56", "vgg16"])
def test_checkpoint_round_trip_gives_identical_logits(tmp_path, name):
    model = build_model(name, n_classes=4, input_shape=(1, 16, 24))
    x = torch.rand(5, 1, 16, 24)
    model.train()
    model(x)  # move BN running statistics away from their initial values
    model.eval()
    config = make_config(model=name, n_classes=4, class_names=list("abcd"), input_shape=[1, 16, 24],
                         representation="stft", scaling={"lo": -80.0, "hi": 0.0}, params={"seed": 0})
    save_checkpoint(tmp_path / "m.pt", model=model, config=config)
    loaded, loaded_config = load_checkpoint(tmp_path / "m.pt", device="cpu")
    assert not loaded.training
    assert loaded_config == config
    assert torch.equal(loaded(x), model(x))


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="other.pt"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError):
        make_config(model="resnet56", n_classes=2, class_names=["a", "b"], input_shape=[1, 8, 8],
                    representation="stft", scaling={"lo": torch.tensor(0.0)}, params={})


def _good_checkpoint(path):
    model = build_model("alexnet", n_classes=3, input_shape=(1, 16, 16))
    config = make_config(model="alexnet", n_classes=3, class_names=list("abc"), input_shape=[1, 16, 16],
                         representation="stft", scaling={"lo": 0.0, "hi": 1.0}, params={"seed": 0})
    save_checkpoint(path, model=model, config=config)
    return torch.load(path, weights_only=True)


def _write_bad(path, kind):
    blob = _good_checkpoint(path)
    config, state = blob["config"], blob["state_dict"]
    bad = {
        "text": lambda: path.write_text("model: resnet56\nweights: none\n"),
        "one byte": lambda: path.write_bytes(b"x"),
        "empty": lambda: path.write_bytes(b""),
        "random bytes": lambda: path.write_bytes(bytes(range(256)) * 8),
        "truncated": lambda: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
        "a numpy array": lambda: np.save(open(path, "wb"), np.zeros(3)),
        "a list": lambda: torch.save([1, 2], path),
        "a tensor": lambda: torch.save(torch.zeros(3), path),
        "no config": lambda: torch.save({"state_dict": state}, path),
        "config a string": lambda: torch.save({"state_dict": state, "config": "alexnet"}, path),
        "config lacks keys": lambda: torch.save({"state_dict": state, "config": {"model": "alexnet"}}, path),
        "n_classes a string": lambda: torch.save({"state_dict": state, "config": {**config, "n_classes": "3"}}, path),
        "unknown model": lambda: torch.save({"state_dict": state, "config": {**config, "model": "vgg19"}}, path),
        "bad model kwargs": lambda: torch.save({"state_dict": state, "config": {**config, "model_kwargs": {"x": 1}}},
                                               path),
        "bad input shape": lambda: torch.save({"state_dict": state, "config": {**config, "input_shape": [16]}}, path),
        "state not tensors": lambda: torch.save({"state_dict": {k: 1 for k in state}, "config": config}, path),
        "weights of another shape": lambda: torch.save({"state_dict": state, "config": {**config, "n_classes": 4,
                                                        "class_names": list("abcd")}}, path),
        "a directory": lambda: (path.unlink(), path.mkdir()),
        "NaN weights": lambda: torch.save({"state_dict": {k: v.fill_(float("nan")) if v.is_floating_point() else v
                                                          for k, v in state.items()}, "config": config}, path),
        "inf in one weight": lambda: torch.save({"state_dict": {**state, LAST_WEIGHT: state[LAST_WEIGHT].index_fill(
            0, torch.tensor([1]), float("inf"))}, "config": config}, path),
        "NaN bytes inside the zip": lambda: overwrite_in_zip(path, np.full(1000, np.nan, np.float32).tobytes()),
        "zero bytes inside the zip": lambda: overwrite_in_zip(path, bytes(4000)),
        "finite weights that overflow": lambda: torch.save({"state_dict": {
            k: v.fill_(1e38) if v.is_floating_point() and k.startswith("body.") else v for k, v in state.items()},
            "config": config}, path),
        "a sparse weight": lambda: torch.save({"state_dict": {**state, LAST_WEIGHT: state[LAST_WEIGHT].to_sparse()},
                                               "config": config}, path),
        "an integer weight": lambda: torch.save({"state_dict": {**state, LAST_WEIGHT: state[LAST_WEIGHT].long()},
                                                 "config": config}, path),
        "a huge input shape": lambda: torch.save({"state_dict": state, "config": {
            **config, "input_shape": [1, 10**6, 10**6]}}, path),
    }
    bad[kind]()


LAST_WEIGHT = "body.classifier.6.weight"  # alexnet's last layer
# kind -> what the message must say besides naming the file
PROBLEMS = {"NaN weights": "state_dict['adapter.mean'] holds NaN or inf",
            "inf in one weight": f"state_dict[{LAST_WEIGHT!r}] holds NaN or inf",
            "NaN bytes inside the zip": "fails its CRC check", "zero bytes inside the zip": "fails its CRC check",
            "finite weights that overflow": "logits on a constant probe input are NaN or inf",
            "a sparse weight": f"state_dict[{LAST_WEIGHT!r}] (a torch.sparse_coo tensor)",
            "an integer weight": f"state_dict[{LAST_WEIGHT!r}] is torch.int64, expected torch.float32",
            "a huge input shape": "is not [1, H, W] with H, W in 1..8192"}


@pytest.mark.parametrize("kind", ["text", "one byte", "empty", "random bytes", "truncated", "a numpy array", "a list",
                                  "a tensor", "no config", "config a string", "config lacks keys",
                                  "n_classes a string", "unknown model", "bad model kwargs", "bad input shape",
                                  "state not tensors", "weights of another shape", "a directory", *PROBLEMS])
def test_a_file_that_is_not_a_checkpoint_is_named_and_refused(tmp_path, kind):
    path = tmp_path / "model.pt"
    _write_bad(path, kind)
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "is not an advaudio checkpoint" in message, message
    assert "weights_only" not in message
    assert PROBLEMS.get(kind, "") in message, message


class _Payload:
    """Unpickling this creates ``marker``: what a hostile checkpoint would do (run code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("fmt", ["torch zip", "torch legacy", "pickle protocol 2", "pickle protocol 5",
                                 "payload as the config"])
def test_a_checkpoint_holding_a_pickled_payload_is_refused_unrun_and_named(tmp_path, fmt):
    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    blob = {"state_dict": {}, "config": {"model": _Payload(marker)}}
    if fmt == "torch zip":
        torch.save(blob, path)
    elif fmt == "torch legacy":
        torch.save(blob, path, _use_new_zipfile_serialization=False)
    elif fmt == "payload as the config":
        torch.save({"state_dict": {}, "config": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(blob, protocol=int(fmt[-1])))
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert not marker.exists()
    assert str(path) in message and "is not an advaudio checkpoint" in message and "may be hostile" in message
    assert "weights_only" not in message and "will likely succeed" not in message, message


@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_networks_without_batch_norm_start_with_unshrunk_logits(name):
    # torchvision's init gives fresh AlexNet and VGG-16 logits of std 0.001-0.02 at 32x32 (training stalls at chance);
    # He fan-in init keeps the scale (models/torchvision_models.py, "Initialisation").
    torch.manual_seed(0)
    model = build_model(name, n_classes=10, input_shape=(1, 32, 32)).eval()
    with torch.no_grad():
        logits = model(torch.rand(16, 1, 32, 32))
    assert logits.std() > 0.1


def test_saving_the_same_weights_twice_gives_identical_files(tmp_path):
    # DVC skips everything after an unchanged retraining only if the checkpoint is byte-identical.
    model = build_model("resnet56", n_classes=3, input_shape=(1, 16, 16))
    config = make_config(model="resnet56", n_classes=3, class_names=list("abc"), input_shape=[1, 16, 16],
                         representation="stft", scaling={"lo": 0.0, "hi": 1.0}, params={"seed": 0})
    save_checkpoint(tmp_path / "a.pt", model=model, config=config)
    save_checkpoint(tmp_path / "b.pt", model=model, config=config)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_checkpoint_trained_on_other_features_is_named(tmp_path):
    config = _good_checkpoint(tmp_path / "model.pt")["config"]
    meta = {"dataset": "synth", "storage": {}, **{k: config[k] for k in
            ("representation", "n_classes", "class_names", "input_shape", "scaling")}}
    check_matches_features(config, meta=meta, path=tmp_path / "model.pt")  # the features it was trained on
    with pytest.raises(DataError) as info:
        check_matches_features(config, meta={**meta, "representation": "mel", "n_classes": 4,
                                             "class_names": list("abcd")}, path=tmp_path / "model.pt")
    message = str(info.value)
    assert str(tmp_path / "model.pt") in message and "representation 'stft' vs 'mel'" in message, message
    assert "n_classes 3 vs 4" in message and "rerun the train stage" in message
