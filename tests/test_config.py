"""The validated configuration: unknown keys, bad types and bad values fail with a clear message."""

from pathlib import Path

import pytest
import yaml

from advaudio.config import Params, load_params, params_from_dict, validate_choices
from advaudio.errors import ConfigError
from advaudio.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.dataset == "synth"
    assert params.augment.scales == (0.75, 0.9, 1.15, 1.5)


def test_defaults_match_params_file():
    """Every key in params.yaml is known to the schema, and nothing is silently dropped."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    params = params_from_dict(raw)
    assert isinstance(params, Params)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"modle": "vgg16"}, "unknown parameter(s) ['modle']"),
        ({"train": {"lr": -1.0}}, "train.lr = -1.0 is out of range"),
        ({"train": {"epochs": "ten"}}, "train.epochs must be an integer"),
        ({"train": {"optimizer": "adagrad"}}, "train.optimizer 'adagrad' is not allowed; choose from"),
        ({"split": {"protocol": "random"}}, "choose from ['official', 'paper']"),
        ({"augment": {"scales": 0.75}}, "augment.scales must be a list"),
        ({"device": "tpu"}, "device 'tpu' is not allowed"),
        ({"synth": {"snr_db_min": 30.0, "snr_db_max": 10.0}}, "must not exceed"),
        ({"train": {"by_model": {"vgg16": {"lr": -1.0}}}}, "train.by_model.vgg16: train.lr = -1.0 is out of range"),
        ({"train": {"by_model": {"vgg16": {"amp": False}}}}, "train.by_model.vgg16 has unknown key(s) ['amp']"),
        ({"train": {"by_model": {"vgg16": 0.01}}}, "train.by_model.vgg16 must be a mapping"),
        ({"fgsm_retrain": {"lr_scale": 0.0}}, "fgsm_retrain.lr_scale = 0.0 is out of range"),
    ],
)
def test_bad_values_are_refused(raw, message):
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("model", "vgg61", "'resnet56'"),
        ("representation", "mfcc", "'dwt_tonnetz'"),
        ("dataset", "esc10", "'urbansound8k'"),
    ],
)
def test_registry_choices_list_the_allowed_set(key, value, allowed):
    params = params_from_dict({key: value})
    with pytest.raises(ConfigError) as info:
        validate_choices(params)
    assert f"{key} {value!r} is not allowed" in str(info.value)
    assert allowed in str(info.value)


def test_unknown_attack_is_refused():
    params = params_from_dict({"attack": {"attacks": ["jsam"]}})
    with pytest.raises(ConfigError, match="'jsam' is not allowed; choose from .*'jsma'"):
        validate_choices(params)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_registry_refuses_duplicates_and_lists_names():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(2)
    with pytest.raises(ConfigError, match=r"unknown widget 'b'; choose from \['a'\]"):
        reg.get("b")


def _write_params(tmp_path, text, profiles):
    (tmp_path / "params.yaml").write_text(text)
    (tmp_path / "profiles").mkdir()
    for name, body in profiles.items():
        (tmp_path / "profiles" / f"{name}.yaml").write_text(body)
    return tmp_path / "params.yaml"


def test_profile_overrides_merge_into_params(tmp_path):
    path = _write_params(
        tmp_path,
        "profile: big\nspectrogram:\n  height: 32\n  width: 32\ntrain:\n  epochs: 3\n",
        {"default": "{}\n", "big": "spectrogram:\n  height: 768\n"},
    )
    params = load_params(path, check_choices=False)
    assert params.spectrogram.height == 768  # from the profile
    assert params.spectrogram.width == 32  # kept from params.yaml
    assert params.train.epochs == 3


def test_unknown_profile_lists_the_available_ones(tmp_path):
    path = _write_params(tmp_path, "profile: huge\n", {"default": "{}\n", "study": "{}\n"})
    with pytest.raises(ConfigError, match=r"profile 'huge' is not allowed; choose from \['default', 'study'\]"):
        load_params(path, check_choices=False)


def test_repository_profiles_are_valid():
    for profile in sorted(p.stem for p in (REPO / "profiles").glob("*.yaml")):
        text = (REPO / "params.yaml").read_text().replace("profile: default", f"profile: {profile}", 1)
        raw = yaml.safe_load(text)
        assert raw["profile"] == profile
        from advaudio.config import load_profile, merge_overrides

        params = params_from_dict(merge_overrides(raw, load_profile(profile, profiles_dir=REPO / "profiles")))
        validate_choices(params)


def test_per_model_training_overrides_apply_to_that_model_only():
    raw = {"model": "vgg16", "train": {"lr": 0.001, "optimizer": "adam",
                                       "by_model": {"vgg16": {"optimizer": "sgd", "lr": 0.01}}}}
    params = params_from_dict(raw)
    assert (params.model_train.optimizer, params.model_train.lr) == ("sgd", 0.01)
    assert params.model_train.epochs == params.train.epochs and params.model_train.by_model == {}
    other = params_from_dict({**raw, "model": "resnet56"})
    assert (other.model_train.optimizer, other.model_train.lr) == ("adam", 0.001)


def test_per_model_overrides_name_a_registered_model():
    params = params_from_dict({"train": {"by_model": {"vgg61": {"lr": 0.01}}}})
    with pytest.raises(ConfigError, match=r"train.by_model key 'vgg61' is not allowed; choose from \['alexnet'"):
        validate_choices(params)
