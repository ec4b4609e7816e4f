"""The validated configuration: unknown keys, bad types and bad values fail with a clear message."""

import dataclasses
import math
import typing
from pathlib import Path

import pytest
import yaml

from advaudio.config import Params, load_params, params_from_dict, validate_choices
from advaudio.errors import ConfigError
from advaudio.registry import Registry

LADDERS = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())["attack"]["ladders"]

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.dataset == "synth"
    assert params.augment.scales == (0.75, 0.9, 1.15, 1.5)


def _schema_keys(cls, prefix=""):
    """Dotted names of every parameter of the dataclass schema ``cls`` (mappings such as ``train.by_model`` are
    one parameter)."""
    keys = set()
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        keys |= _schema_keys(tp, f"{prefix}{f.name}.") if dataclasses.is_dataclass(tp) else {prefix + f.name}
    return keys


def _file_keys(raw, schema, prefix=""):
    return {k for name, value in raw.items() for k in (
        _file_keys(value, schema, f"{prefix}{name}.") if f"{prefix}{name}" not in schema and isinstance(value, dict)
        else {prefix + name})}


def _set_by_file(raw, params, prefix=""):
    """``{dotted key: value in params}`` for every parameter the params file ``raw`` sets, descending into the
    dataclass sections (mappings such as ``train.by_model`` are one parameter)."""
    values = {}
    for name, value in raw.items():
        held = getattr(params, name)
        if dataclasses.is_dataclass(held) and isinstance(value, dict):
            values |= _set_by_file(value, held, f"{prefix}{name}.")
        else:
            values[prefix + name] = held
    return values


def _same(a, b):
    """Equal and of the same type, item by item: ``1 == True`` and ``2 == 2.0`` in Python, but a default of
    ``1`` for a bool or ``2`` for a float is not the file's value."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


#: Defaults that differ from params.yaml on purpose, with the value they hold instead. The per-registry tables are
#: empty by default, so a partial params dict (tests, benchmarks) gets no model's training overrides and no budget
#: ladder unless it sets them; the attack stages refuse a missing ladder. So no reference attack (each needs one).
DELIBERATE_DEFAULTS = {"train.by_model": {}, "attack.ladders": {}, "attack.reference": ()}


def test_defaults_match_params_file():
    """params.yaml sets every parameter (so the pipeline never runs on a default), and every default equals
    the file's value, field by field (so tests and benchmarks built from defaults run what the pipeline runs)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert _file_keys(raw, _schema_keys(Params)) == _schema_keys(Params)
    from_file, defaults = _set_by_file(raw, params_from_dict(raw)), _set_by_file(raw, Params())
    assert from_file.keys() == defaults.keys() == _schema_keys(Params)
    for key, value in DELIBERATE_DEFAULTS.items():
        assert defaults.pop(key) == value and from_file.pop(key), key
    differ = [f"{key}: default {defaults[key]!r}, params.yaml {from_file[key]!r}"
              for key in sorted(from_file) if not _same(defaults[key], from_file[key])]
    assert differ == []


def _float_keys(cls=Params, prefix=""):
    """Dotted names of every float parameter of the schema (``augment.scales`` as its first item)."""
    keys = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            keys += _float_keys(tp, f"{prefix}{f.name}.")
        elif tp is float or tp == tuple[float, ...]:
            keys.append(prefix + f.name)
    return keys


def _nested(key, value):
    head, _, rest = key.partition(".")
    return {head: _nested(rest, value) if rest else value}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf"], ids=repr)
@pytest.mark.parametrize("key", _float_keys())
def test_every_float_parameter_refuses_nan_inf_and_strings(key, value):
    """Found from the schema, so a new float parameter is covered (and needs a ``_check_range``)."""
    raw = _nested(key, [value] if key == "augment.scales" else value)
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw)
    assert key in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".inf", "-.inf"])
def test_yaml_nan_in_a_params_file_names_the_file_and_key(tmp_path, text):
    (tmp_path / "params.yaml").write_text(f"split:\n  holdout: {text}\n")
    with pytest.raises(ConfigError, match=r"params.yaml: split.holdout = -?(nan|inf) is not a finite number; "
                                          r"expected a value in \[0.05, 0.95\]"):
        load_params(tmp_path / "params.yaml", check_choices=False)


def test_nan_in_a_per_model_override_names_the_key():
    with pytest.raises(ConfigError, match=r"train.by_model.vgg16: train.lr = nan is not a finite number"):
        params_from_dict({"train": {"by_model": {"vgg16": {"lr": math.nan}}}})


def test_an_exponent_yaml_reads_as_text_is_explained():
    raw = yaml.safe_load("train:\n  lr: 1e-4\n")  # PyYAML: a string
    with pytest.raises(ConfigError, match=r"train.lr must be a number, got '1e-4' \(a string: .*1.0e-4"):
        params_from_dict(raw)


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
        # insane but accepted before: a clip too short to hold an STFT window, zero budgets, duplicates
        ({"audio": {"clip_seconds": 0.001}}, "audio.clip_seconds = 0.001 is too short; expected 0 (the dataset's"),
        ({"audio": {"clip_seconds": -1.0}}, "audio.clip_seconds = -1.0 is out of range"),
        ({"fgsm_retrain": {"epsilon": 0.0}}, "fgsm_retrain.epsilon = 0.0 is out of range; expected a value in (0.0"),
        ({"attack": {"target_fooling_rate": 0.0}}, "attack.target_fooling_rate = 0.0 is out of range"),
        ({"attack": {"attacks": ["cw", "pia", "cw"]}}, "attack.attacks has duplicates: ['cw', 'pia', 'cw']"),
        ({"attack": {"n_victims": 0}}, "attack.n_victims = 0 is out of range"),
        ({"attack": {"n_victims": True}}, "attack.n_victims must be an integer, got True"),
        ({"train": {"lr": True}}, "train.lr must be a number, got True"),
        ({"train": {"amp": 1}}, "train.amp must be true or false, got 1"),
        ({"train": {"batch_size": 0}}, "train.batch_size = 0 is out of range"),
        ({"augment": {"scales": [0.9, 1.0]}}, "augment.scales[1] = 1.0 would copy every clip unchanged"),
        ({"augment": {"scales": [0.9, "x"]}}, "augment.scales[1] must be a number, got 'x'"),
        ({"spectrogram": {"n_fft": 256, "hop_length": 512}}, "spectrogram.hop_length = 512 exceeds spectrogram.n_fft"),
        ({"spectrogram": {"dwt_sample_rate": 8000, "dwt_fmin": 4000.0}}, "spectrogram.dwt_fmin = 4000.0 Hz is not below"),
        ({"synth": {"snr_db_min": -1e6}}, "synth.snr_db_min = -1000000.0 is out of range"),
        ({"device": "cudax"}, "device 'cudax' is not allowed"),
        ({"device": "cuda:"}, "device 'cuda:' is not allowed"),
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
    params = params_from_dict({"train": {"by_model": {"vgg61": {"lr": 0.01}}}, "attack": {"ladders": LADDERS}})
    with pytest.raises(ConfigError, match=r"train.by_model key 'vgg61' is not allowed; choose from \['alexnet'"):
        validate_choices(params)


def test_every_listed_attack_needs_a_ladder_reference_attacks_included():
    ladders = {k: v for k, v in LADDERS.items() if k != "apgd_dlr"}
    params = params_from_dict({"attack": {"reference": ["apgd_ce", "apgd_dlr"], "ladders": ladders}})
    with pytest.raises(ConfigError, match=r"attack.ladders has no ladder for \['apgd_dlr'\]; every attack in "
                                          r"attack.attacks and attack.reference needs one"):
        validate_choices(params)
    validate_choices(params_from_dict({"attack": {"reference": ["apgd_ce", "apgd_dlr"], "ladders": LADDERS}}))


@pytest.mark.parametrize("seconds", [0.0, 0.1, 5.0])
def test_sane_clip_lengths_are_accepted(seconds):
    assert params_from_dict({"audio": {"clip_seconds": seconds}}).audio.clip_seconds == seconds


# --- attack ladder rungs: checked against each attack's constructor ---------------------------------------


def _with_ladder(name, ladder):
    return params_from_dict({"attack": {"attacks": [name], "ladders": {name: ladder}}})


@pytest.mark.parametrize(
    ("name", "ladder", "message"),
    [
        ("bim_a", [{"epsilon": -1.0, "steps": 20}], "attack.ladders.bim_a[0].epsilon = -1.0; expected a finite number in (0.0"),
        ("bim_a", [{"epsilon": 1.0}, {"epsilon": 2.0, "steps": "many"}], "attack.ladders.bim_a[1].steps = 'many'; expected an integer"),
        ("bim_b", [{"epsilon": 0.0}], "attack.ladders.bim_b[0].epsilon = 0.0"),
        ("bim_b", [{"epsilon": math.nan}], "attack.ladders.bim_b[0].epsilon = nan"),
        ("bim_b", [{"epsilon": "1.0"}], "attack.ladders.bim_b[0].epsilon = '1.0'; expected a finite number"),
        ("bim_b", [{"steps": 10}], "attack.ladders.bim_b[0] needs an 'epsilon'"),
        ("bim_b", [{"epsilon": 1.0, "steps": 2.5}], "attack.ladders.bim_b[0].steps = 2.5; expected an integer"),
        ("bim_b", [{"epsilon": 1.0, "steps": True}], "attack.ladders.bim_b[0].steps = True; expected an integer"),
        ("bim_b", [{"epsilon": 1.0, "rel_stepsize": -0.1}], "attack.ladders.bim_b[0].rel_stepsize = -0.1"),
        ("bim_b", [{"epsilon": 1.0, "abs_stepsize": None}, {"epsilon": 1.0, "abs_stepsize": 0}],
         "attack.ladders.bim_b[1].abs_stepsize = 0; expected a finite number or null in (0.0"),
        ("bim_b", [{"epsilon": 1.0, "step": 10}], "attack.ladders.bim_b[0] has unknown setting(s) ['step']; allowed:"),
        ("deepfool", [{"steps": 10, "epsilon": 1.0}], "attack.ladders.deepfool[0] has unknown setting(s) ['epsilon'] (this attack minimises"),
        ("deepfool", [{"steps": 0}], "attack.ladders.deepfool[0].steps = 0; expected an integer in [1, 1000000]"),
        ("deepfool", [{"candidates": 1}], "attack.ladders.deepfool[0].candidates = 1"),
        ("jsma", [{"max_iterations": 0}], "attack.ladders.jsma[0].max_iterations = 0"),
        ("jsma", [{"theta": 2.0}], "attack.ladders.jsma[0].theta = 2.0; expected a finite number in (0.0, 1.0]"),
        ("jsma", [{"pairs": 1}], "attack.ladders.jsma[0].pairs = 1; expected true or false"),
        ("jsma", [{"output": "probs"}], "attack.ladders.jsma[0].output = 'probs'; expected one of ['softmax', 'logits']"),
        ("cw", [{"c": -1.0}], "attack.ladders.cw[0].c = -1.0"),
        ("cw", [{"c": 1.0, "binary_search_steps": 0}], "attack.ladders.cw[0].binary_search_steps = 0"),
        ("cw", [{"confidence": -0.5}], "attack.ladders.cw[0].confidence = -0.5"),
        ("pia", [{"epsilon": 0.1, "samples": 51}], "attack.ladders.pia[0].samples = 51; expected an integer in [2, 100000] and even"),
        ("pia", [{"epsilon": 0.1, "seed": 3}], "attack.ladders.pia[0] has unknown setting(s) ['seed'] (the budget search seeds"),
        ("pia", [{"epsilon": 0.1, "norm": "l1"}], "attack.ladders.pia[0].norm = 'l1'"),
        ("pia", [{"epsilon": math.inf}], "attack.ladders.pia[0].epsilon = inf"),
        ("pia", ["epsilon: 0.1"], "attack.ladders.pia"),
    ],
)
def test_bad_ladder_rungs_are_refused_by_name(name, ladder, message):
    with pytest.raises(ConfigError) as info:
        validate_choices(_with_ladder(name, ladder))
    assert message in str(info.value)


def test_ladder_rungs_are_checked_by_load_params(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "attack:\n  attacks: [bim_a]\n  ladders:\n    bim_a:\n    - epsilon: -1\n      steps: 20\n")
    with pytest.raises(ConfigError, match=r"params.yaml: attack.ladders.bim_a\[0\].epsilon = -1"):
        load_params(tmp_path / "params.yaml")


def test_every_attacks_rung_limits_name_exactly_its_constructor_parameters():
    """The limits are declared beside each constructor; this keeps them from drifting apart, and checks that
    every constructor default (and a unit ``epsilon``) passes them."""
    import inspect

    import foolbox as fb

    from advaudio.attacks import ATTACKS
    from advaudio.attacks.common import check_rung, rung_settings

    for name in ATTACKS.names():
        cls = ATTACKS.get(name)
        settings = rung_settings(cls)
        assert set(cls.rung_limits) == set(settings), name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in settings.values()), name
        defaults = {k: p.default for k, p in settings.items()}
        if issubclass(cls, fb.attacks.base.FixedEpsilonAttack):
            defaults["epsilon"] = 1.0
        check_rung(cls, defaults, key=f"attack.ladders.{name}[0]")
        cls(**{k: v for k, v in defaults.items() if k != "epsilon"})  # what the limits accept, the constructor does


# --- held-out trials that got through a first version -------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("seed: 0\nseed: 7\n", r"key 'seed' given twice \(lines 1 and 2\)"),
        ("train:\n  epochs: 3\n  epochs: 4\n", r"key 'epochs' given twice \(lines 2 and 3\)"),
        ("seed: &a 1\nsynth:\n  n_folds: *a\n", r"alias \*a refused"),
        ("seed: 1" + "0" * 400 + "\n", r"seed = 1000.*is out of range"),
        ("train:\n  lr: 1" + "0" * 400 + "\n", r"train.lr = 1000.*too large"),
        ("attack:\n  attacks: [cw]\n  ladders:\n    cw:\n    - c: 1" + "0" * 400 + "\n",
         r"attack.ladders.cw\[0\].c = 1000.*expected a finite number in \(0.0, 1000000.0\]"),
        ("attack:\n  attacks: [cw, pia]\n  ladders:\n    cw:\n    - c: 1.0\n", r"no ladder for \['pia'\]"),
        ("attack:\n  attacks: [pia]\n  ladders:\n    pia:\n    - epsilon: 0.1\n      samples: 2000000000\n",
         r"pia\[0\].samples = 2000000000; expected an integer in \[2, 100000\]"),
        ("attack:\n  attacks: [deepfool]\n  ladders:\n    deepfool:\n    - steps: 1000000000000\n",
         r"deepfool\[0\].steps = 1000000000000; expected an integer in \[1, 1000000\]"),
        ("attack:\n  attacks: [bim_a]\n  ladders:\n    bim_a:\n    - epsilon: 1.0e+300\n",
         r"bim_a\[0\].epsilon = 1e\+300"),
        # a second round of held-out trials
        ("train:\n  epochs: 015\n", r"'015' reads as an octal or base-60 number"),
        ("seed: 1:30\n", r"'1:30' reads as an octal or base-60 number"),
        ("spectrogram:\n  dwt_fmin: 0:40.5\n", r"'0:40.5' reads as a base-60 number"),
        ("no: 1\n", r"key False is not a name"),
        ("train:\n  on: 1\n", r"key True is not a name"),
        ("? [a]\n: 1\n", r"key \['a'\] is not a name"),
        ("seed: " + "[" * 400 + "]" * 400 + "\n", r"not a usable params file \(maximum recursion depth"),
        ("seed: " + "9" * 5000 + "\n", r"not a usable params file \(Exceeds the limit"),
        ("device: cuda:" + "9" * 50 + "\n", r"device 'cuda:999.*is not allowed"),
        ("synth:\n  clips_per_class: 1000000000000\n", r"synth.clips_per_class = 1000000000000 is out of range"),
    ],
)
def test_params_files_that_a_first_version_accepted_or_crashed_on(tmp_path, text, expected):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_params(tmp_path / "params.yaml")


def test_an_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path):
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    (tmp_path / "params.yaml").write_text("\n".join(lines) + "\nseed: *a8\n")
    with pytest.raises(ConfigError, match=r"alias \*a0 refused") as err:
        load_params(tmp_path / "params.yaml")
    assert len(str(err.value)) < 500


@pytest.mark.parametrize("content", [b"# caf\xe8\nseed: 0\n", b"\xff\xfeseed: 0\n"])
def test_a_params_file_that_is_not_utf8_is_named(tmp_path, content):
    (tmp_path / "params.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match=r"params.yaml' is not UTF-8 text"):
        load_params(tmp_path / "params.yaml")


def test_a_profile_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "profiles" / "evil.yaml").mkdir(parents=True)
    (tmp_path / "params.yaml").write_text("profile: evil\n")
    with pytest.raises(ConfigError, match=r"evil.yaml' cannot be read"):
        load_params(tmp_path / "params.yaml")


def test_a_long_value_is_shortened_in_messages():
    with pytest.raises(ConfigError) as err:
        params_from_dict({"model": ["x" * 10_000] * 1000})
    assert "model must be a string" in str(err.value) and len(str(err.value)) < 300


def test_a_cuda_device_this_machine_lacks_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    params = params_from_dict({"device": "cuda:99", "attack": {"ladders": LADDERS}})
    with pytest.raises(ConfigError, match=r"device 'cuda:99' is not available: this machine has 2 CUDA device"):
        validate_choices(params)
    validate_choices(params_from_dict({"device": "cuda:1", "attack": {"ladders": LADDERS}}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device 'cuda' is not available: this machine has no usable CUDA"):
        validate_choices(params_from_dict({"device": "cuda", "attack": {"ladders": LADDERS}}))
