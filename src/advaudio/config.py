"""The one validated configuration: ``params.yaml`` read into frozen dataclasses.

Every stage calls :func:`load_params`; unknown keys, wrong types, NaN or inf and out-of-range values raise
:class:`~advaudio.errors.ConfigError` naming the key, the value and what was expected. Names that pick
from a registry (dataset, representation, model, attacks) and the rungs of the attack ladders (checked
against each attack's constructor) are checked by :func:`validate_choices`, which imports the registries
lazily so that light stages stay light.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from advaudio.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
PROFILES_DIR = "profiles"  # beside params.yaml: profiles/<name>.yaml overrides params.yaml when profile=<name>
# Shortest clip a dataset may be cut to: one 2048-sample STFT window at 22.05 kHz is 93 ms, and anything shorter
# holds too little of an event to classify (ESC-50 clips last 5 s, UrbanSound8K up to 4 s).
MIN_CLIP_SECONDS = 0.1
RETRAIN_METHODS = ("fgsm", "pgd")  # fgsm_retrain.method: the study's one-step FGSM, or Madry et al.'s PGD


@dataclass(frozen=True)
class SynthConfig:
    """The built-in synthetic dataset (written in the ESC-50 layout under ``build/synth``)."""

    n_classes: int = 10
    clips_per_class: int = 40
    clips_per_source: int = 2
    clip_seconds: float = 2.0
    sample_rate: int = 22050
    n_folds: int = 5
    snr_db_min: float = 5.0
    snr_db_max: float = 25.0

    def __post_init__(self) -> None:
        _check_range("synth.n_classes", self.n_classes, 2, 10)
        _check_range("synth.clips_per_class", self.clips_per_class, 2, 9999)
        _check_range("synth.clips_per_source", self.clips_per_source, 1, None)
        _check_range("synth.clip_seconds", self.clip_seconds, MIN_CLIP_SECONDS, 60.0)
        _check_range("synth.sample_rate", self.sample_rate, 4000, 192000)
        _check_range("synth.n_folds", self.n_folds, 2, 10)
        _check_range("synth.snr_db_min", self.snr_db_min, -100.0, 100.0)
        _check_range("synth.snr_db_max", self.snr_db_max, -100.0, 100.0)
        if self.snr_db_min > self.snr_db_max:
            raise ConfigError(
                f"synth.snr_db_min ({self.snr_db_min}) must not exceed synth.snr_db_max ({self.snr_db_max})"
            )


@dataclass(frozen=True)
class AudioConfig:
    """How raw audio is decoded: target rate, clip length (0 = the dataset's own) and bad-file policy."""

    sample_rate: int = 22050
    clip_seconds: float = 0.0
    skip_bad_files: bool = False

    def __post_init__(self) -> None:
        _check_range("audio.sample_rate", self.sample_rate, 4000, 192000)
        _check_range("audio.clip_seconds", self.clip_seconds, 0.0, 60.0)
        if 0.0 < self.clip_seconds < MIN_CLIP_SECONDS:
            raise ConfigError(
                f"audio.clip_seconds = {self.clip_seconds!r} is too short; expected 0 (the dataset's own length) "
                f"or a length in [{MIN_CLIP_SECONDS}, 60.0] seconds"
            )


@dataclass(frozen=True)
class SplitConfig:
    """Evaluation protocol: the official folds, or the study's 70/30 holdout with k-fold CV."""

    protocol: str = "official"
    test_fold: int = 1
    holdout: float = 0.3
    cv_folds: int = 5

    def __post_init__(self) -> None:
        _check_choice("split.protocol", self.protocol, ["official", "paper"])
        _check_range("split.test_fold", self.test_fold, 1, 10)
        _check_range("split.holdout", self.holdout, 0.05, 0.95)
        _check_range("split.cv_folds", self.cv_folds, 2, 20)


@dataclass(frozen=True)
class AugmentConfig:
    """Pitch-shift augmentation of training clips; scales are frequency ratios (12*log2(s) semitones).
    ``workers`` processes (one thread each) decode and shift; 1 = no pool."""

    scales: tuple[float, ...] = (0.75, 0.9, 1.15, 1.5)
    workers: int = 2

    def __post_init__(self) -> None:
        _check_range("augment.workers", self.workers, 1, 256)
        for i, s in enumerate(self.scales):
            _check_range(f"augment.scales[{i}]", s, 0.25, 4.0)
            if s == 1.0:
                raise ConfigError(f"augment.scales[{i}] = 1.0 would copy every clip unchanged; "
                                  "expected a pitch-shift ratio in [0.25, 4.0] other than 1.0")
        if len(set(self.scales)) != len(self.scales):
            raise ConfigError(f"augment.scales has duplicates: {list(self.scales)}")


@dataclass(frozen=True)
class SpectrogramConfig:
    """2D representation settings. ``height`` x ``width`` is the spectrogram's size after resizing;
    tonnetz representations append ``tonnetz_height`` more rows.

    ``dwt_cycles`` is the Morlet's omega0 (pywt ``cmorB-1.0`` with ``B = 2 (cycles / 2 pi)^2``);
    ``dwt_hop_length`` is the wavelet frame hop in samples at the DWT rate (frames overlap by 50 %; a
    multiple of 4). ``top_db`` is the dynamic range kept below each clip's peak in the dB domain.
    ``scale_percentile`` p: the [0, 1] scaling maps the train split's p-th and (100 - p)-th percentiles
    to 0 and 1 and clips the rest.
    """

    height: int = 32
    width: int = 32
    tonnetz_height: int = 16
    n_fft: int = 2048
    hop_length: int = 512
    dwt_sample_rate: int = 16000
    dwt_scales: int = 128
    dwt_fmin: float = 40.0
    dwt_cycles: float = 6.0
    dwt_hop_length: int = 256
    top_db: float = 60.0
    scale_percentile: float = 0.5
    workers: int = 2

    def __post_init__(self) -> None:
        _check_range("spectrogram.height", self.height, 8, 4096)
        _check_range("spectrogram.width", self.width, 8, 4096)
        _check_range("spectrogram.tonnetz_height", self.tonnetz_height, 1, 4096)
        _check_range("spectrogram.n_fft", self.n_fft, 16, 65536)
        _check_range("spectrogram.hop_length", self.hop_length, 1, 65536)
        if self.hop_length > self.n_fft:
            raise ConfigError(
                f"spectrogram.hop_length = {self.hop_length} exceeds spectrogram.n_fft = {self.n_fft}; expected a "
                "hop no longer than the window (a longer one skips audio between frames)"
            )
        _check_range("spectrogram.dwt_sample_rate", self.dwt_sample_rate, 1000, 192000)
        _check_range("spectrogram.dwt_scales", self.dwt_scales, 4, 4096)
        _check_range("spectrogram.dwt_fmin", self.dwt_fmin, 1.0, 20000.0)
        if self.dwt_fmin >= self.dwt_sample_rate / 2:
            raise ConfigError(
                f"spectrogram.dwt_fmin = {self.dwt_fmin!r} Hz is not below the Nyquist frequency "
                f"({self.dwt_sample_rate / 2:g} Hz) of spectrogram.dwt_sample_rate = {self.dwt_sample_rate}"
            )
        _check_range("spectrogram.dwt_cycles", self.dwt_cycles, 1.0, 50.0)
        _check_range("spectrogram.dwt_hop_length", self.dwt_hop_length, 4, 65536)
        if self.dwt_hop_length % 4:
            raise ConfigError(
                f"spectrogram.dwt_hop_length = {self.dwt_hop_length} must be a multiple of 4 "
                "(the wavelet is sampled at 4 points per hop)"
            )
        _check_range("spectrogram.top_db", self.top_db, 10.0, 200.0)
        _check_range("spectrogram.scale_percentile", self.scale_percentile, 0.0, 10.0)
        _check_range("spectrogram.workers", self.workers, 1, 256)


@dataclass(frozen=True)
class TrainConfig:
    """Training of the victim network.

    ``val_fold`` is the training-pool fold whose originals are the validation set for early stopping
    (0 = the pool's lowest fold); ``cross_validate`` rotates it over every pool fold. ``amp`` (bf16/fp16
    autocast) applies on CUDA only; ``channels_last`` is the memory format of model and batches.
    ``by_model`` maps a model name to overrides of the optimisation keys (:data:`PER_MODEL_TRAIN_KEYS`)
    for that model only; :meth:`for_model` applies them.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "cosine"
    epochs: int = 15
    batch_size: int = 64
    weight_decay: float = 5e-4
    patience: int = 5
    pretrained: bool = False
    cross_validate: bool = False
    channels_last: bool = True
    amp: bool = True
    val_fold: int = 0
    by_model: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_choice("train.optimizer", self.optimizer, ["adam", "adamw", "sgd"])
        _check_range("train.lr", self.lr, 1e-8, 10.0)
        _check_choice("train.schedule", self.schedule, ["cosine", "step", "none"])
        _check_range("train.epochs", self.epochs, 1, 10000)
        _check_range("train.batch_size", self.batch_size, 1, 65536)
        _check_range("train.weight_decay", self.weight_decay, 0.0, 1.0)
        _check_range("train.patience", self.patience, 1, 10000)
        _check_range("train.val_fold", self.val_fold, 0, 20)
        for model in self.by_model:
            self.for_model(model)  # validates every override now, not when that model is trained

    def for_model(self, model: str) -> "TrainConfig":
        """These settings with ``by_model[model]`` applied; ``by_model`` itself is dropped.

        Raises
        ------
        ConfigError
            Naming ``train.by_model.<model>``: not a mapping, a key outside :data:`PER_MODEL_TRAIN_KEYS`,
            or a bad value.
        """
        overrides = self.by_model.get(model, {})
        key = f"train.by_model.{model}"
        if not isinstance(overrides, dict):
            raise ConfigError(f"{key} must be a mapping of {list(PER_MODEL_TRAIN_KEYS)}, got {_show(overrides)}")
        unknown = sorted(set(overrides) - set(PER_MODEL_TRAIN_KEYS))
        if unknown:
            raise ConfigError(f"{key} has unknown key(s) {unknown}; allowed: {list(PER_MODEL_TRAIN_KEYS)}")
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "by_model"}
        try:
            return _build(TrainConfig, {**base, **overrides}, prefix="train.")
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None


#: Keys of ``train`` that ``train.by_model.<model>`` may override.
PER_MODEL_TRAIN_KEYS = ("optimizer", "lr", "schedule", "epochs", "batch_size", "weight_decay", "patience")


@dataclass(frozen=True)
class AttackConfig:
    """Attack suite settings shared by ``attack_original``, ``attack_retrained_bounded`` and ``attack_retrained``.

    ``ladders`` maps each attack name to its budget ladder (a list of dicts of that attack's keyword
    arguments, climbed in order until the fooling rate reaches ``target_fooling_rate``; each rung is checked
    against the attack's constructor by :func:`validate_choices`). ``bound_scaling``
    (``none`` | ``study_rms``) says whether ``bound`` is taken as it is or scaled to the same per-element
    RMS as at the study's input size (:mod:`advaudio.evaluation.bound`). ``reference`` lists the reference
    attacks (APGD): run by the same stages, ladders and bound as ``attacks``, checked by the same sanity checks,
    but left out of the study's tables and means and reported beside them (docs/PROTOCOL.md "Reference attack").
    """

    attacks: tuple[str, ...] = ("bim_a", "bim_b", "jsma", "deepfool", "cw", "pia")
    reference: tuple[str, ...] = ()  # params.yaml lists APGD; programmatic params (tests) opt in
    n_victims: int = 40
    target_fooling_rate: float = 0.9
    bound: float = 3.0
    bound_scaling: str = "study_rms"
    batch_size: int = 32
    amp: bool = True
    curve_points: int = 50
    curve_max: float = 150.0
    n_examples: int = 4
    ladders: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.attacks) == 0:
            raise ConfigError("attack.attacks is empty; list at least one attack")
        if len(set(self.attacks)) != len(self.attacks):
            raise ConfigError(f"attack.attacks has duplicates: {list(self.attacks)}")
        if len(set(self.reference)) != len(self.reference):
            raise ConfigError(f"attack.reference has duplicates: {list(self.reference)}")
        both = sorted(set(self.attacks) & set(self.reference))
        if both:
            raise ConfigError(f"attack.reference repeats {both} of attack.attacks; an attack is one or the other")
        _check_range("attack.n_victims", self.n_victims, 1, 1_000_000)
        _check_range("attack.target_fooling_rate", self.target_fooling_rate, 0.0, 1.0, lo_open=True)
        _check_range("attack.bound", self.bound, 1e-9, 1e9)
        _check_choice("attack.bound_scaling", self.bound_scaling, ["none", "study_rms"])
        _check_range("attack.batch_size", self.batch_size, 0, 65536)
        _check_range("attack.curve_points", self.curve_points, 2, 10000)
        _check_range("attack.curve_max", self.curve_max, 1e-9, 1e9)
        _check_range("attack.n_examples", self.n_examples, 0, 1000)
        for name, ladder in self.ladders.items():
            if not isinstance(ladder, list) or not ladder or not all(isinstance(r, dict) for r in ladder):
                raise ConfigError(
                    f"attack.ladders.{name} = {_show(ladder)}; expected a non-empty list of rungs (mappings of kwargs)"
                )


@dataclass(frozen=True)
class FgsmRetrainConfig:
    """Adversarial retraining, Eq. 14: J' = alpha*J(x) + (1 - alpha)*J(x').

    ``method`` crafts x': ``fgsm`` (the study's one step of size ``epsilon``) or ``pgd`` (Madry et al. 2018:
    ``pgd_steps`` steps of ``pgd_rel_stepsize * epsilon`` from a uniform random start in the L-infinity ball
    of radius ``epsilon``, projected back onto it). The block keeps the study's name for either method.
    ``lr_scale`` is the retraining learning rate as a fraction of the model's training rate
    (``train`` with ``train.by_model`` applied), so it suits every optimiser a model is trained with.
    """

    alpha: float = 0.0
    epsilon: float = 0.03
    epochs: int = 5
    lr_scale: float = 0.5
    from_scratch: bool = False
    method: str = "fgsm"
    pgd_steps: int = 7
    pgd_rel_stepsize: float = 0.25

    def __post_init__(self) -> None:
        _check_range("fgsm_retrain.alpha", self.alpha, 0.0, 1.0)
        _check_range("fgsm_retrain.epsilon", self.epsilon, 0.0, 1.0, lo_open=True)  # 0: no adversarial at all
        _check_range("fgsm_retrain.epochs", self.epochs, 1, 10000)
        _check_range("fgsm_retrain.lr_scale", self.lr_scale, 1e-6, 100.0)
        _check_choice("fgsm_retrain.method", self.method, list(RETRAIN_METHODS))
        _check_range("fgsm_retrain.pgd_steps", self.pgd_steps, 1, 1000)
        _check_range("fgsm_retrain.pgd_rel_stepsize", self.pgd_rel_stepsize, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``."""

    profile: str = "default"
    dataset: str = "synth"
    dataset_dir: str = "build/synth"
    representation: str = "stft"
    model: str = "resnet56"
    seed: int = 0
    data_seed: int = 0
    device: str = "auto"
    synth: SynthConfig = field(default_factory=SynthConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    spectrogram: SpectrogramConfig = field(default_factory=SpectrogramConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    fgsm_retrain: FgsmRetrainConfig = field(default_factory=FgsmRetrainConfig)

    def __post_init__(self) -> None:
        _check_range("seed", self.seed, 0, 2**32 - 1)
        _check_range("data_seed", self.data_seed, 0, 2**32 - 1)
        if not re.fullmatch(r"auto|cpu|cuda(:[0-9]{1,4})?", self.device):
            raise ConfigError(f"device {self.device!r} is not allowed; choose 'auto', 'cpu' or 'cuda[:N]'")

    @property
    def model_train(self) -> TrainConfig:
        """``train`` as it applies to ``model``: ``train.by_model[model]`` merged in."""
        return self.train.for_model(self.model)


def load_params(path: str | Path = DEFAULT_PARAMS, *, check_choices: bool = True) -> Params:
    """Read and validate a params file.

    Parameters
    ----------
    path : str or Path
        The YAML file (parsed with ``yaml.safe_load``).
    check_choices : bool
        Also check registry-backed names (dataset, representation, model, attacks).

    Raises
    ------
    ConfigError
        On a missing file, unknown keys, wrong types or disallowed values (NaN and inf included); the message
        starts with the file (and the profile's file, when one is merged in).
    """
    path = Path(path)
    raw = _read_yaml(path, what="params file") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params file {str(path)!r} must hold a mapping, got {_show(raw)}")
    profile = raw.get("profile", "default")
    if not isinstance(profile, str):
        raise ConfigError(f"profile must be a string, got {_show(profile)}")
    profiles_dir = path.parent / PROFILES_DIR
    raw = merge_overrides(raw, load_profile(profile, profiles_dir=profiles_dir))
    try:
        params = params_from_dict(raw)
        if check_choices:
            validate_choices(params)
    except ConfigError as exc:
        source = str(path) if profile == "default" else f"{path} with {profiles_dir / profile}.yaml"
        raise ConfigError(f"{source}: {exc}") from None
    return params


def load_profile(name: str, *, profiles_dir: str | Path = PROFILES_DIR) -> dict[str, Any]:
    """The overrides of profile ``name`` (``profiles/<name>.yaml``), e.g. ``study`` for the study's budgets
    and sizes.

    Raises
    ------
    ConfigError
        If the profile file does not exist (the message lists the profiles there) or is not a mapping.
    """
    profiles_dir = Path(profiles_dir)
    available = sorted({"default", *(p.stem for p in profiles_dir.glob("*.yaml"))})
    if name == "default" and not (profiles_dir / "default.yaml").exists():
        return {}  # the default profile changes nothing; its file exists only as a DVC dependency
    if name not in available:
        raise ConfigError(f"profile {name!r} is not allowed; choose from {available} (files in {profiles_dir}/)")
    overrides = _read_yaml(profiles_dir / f"{name}.yaml", what="profile") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"profile {str(profiles_dir / name)!r}.yaml must hold a mapping")
    if "profile" in overrides:
        raise ConfigError(f"profile {name!r} must not set 'profile' itself")
    return overrides


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overrides`` into a copy of ``base``: mappings merge key by key, everything else
    (numbers, strings, lists) is replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Build :class:`Params` from a plain dict (as parsed from YAML), validating every value."""
    return _build(Params, raw, prefix="")


def validate_choices(params: Params) -> None:
    """Check names that select from a registry, and every rung of ``attack.ladders`` against its attack's
    constructor (:func:`advaudio.attacks.common.check_rung`).

    Raises
    ------
    ConfigError
        Naming the parameter (e.g. ``attack.ladders.bim_a[0].steps``), the value and the allowed set.
    """
    from advaudio.attacks import ATTACKS
    from advaudio.attacks.common import check_rung
    from advaudio.data.datasets import DATASETS
    from advaudio.features.representations import REPRESENTATIONS
    from advaudio.models import MODELS

    _check_choice("dataset", params.dataset, DATASETS.names())
    _check_choice("representation", params.representation, REPRESENTATIONS.names())
    _check_choice("model", params.model, MODELS.names())
    for i, name in enumerate(params.attack.attacks):
        _check_choice(f"attack.attacks[{i}]", name, ATTACKS.names())
    for i, name in enumerate(params.attack.reference):
        _check_choice(f"attack.reference[{i}]", name, ATTACKS.names())
    for name, ladder in params.attack.ladders.items():
        _check_choice("attack.ladders key", name, ATTACKS.names())
        for i, rung in enumerate(ladder):
            check_rung(ATTACKS.get(name), rung, key=f"attack.ladders.{name}[{i}]")
    for name in params.train.by_model:
        _check_choice("train.by_model key", name, MODELS.names())
    missing = [a for a in (*params.attack.attacks, *params.attack.reference) if a not in params.attack.ladders]
    if missing:
        raise ConfigError(f"attack.ladders has no ladder for {missing}; every attack in attack.attacks and "
                          "attack.reference needs one")
    resolve_device(params.device)


def resolve_device(name: str) -> str:
    """Map ``'auto'`` to ``'cuda'`` when a GPU is available, else ``'cpu'``; other names pass through.

    Raises
    ------
    ConfigError
        For ``cuda`` or ``cuda:N`` on a machine without that CUDA device.
    """
    if name == "cpu":
        return name
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(name.partition(":")[2] or 0)
    if index >= count:
        have = f"{count} CUDA device(s)" if count else "no usable CUDA device"
        raise ConfigError(f"device {name!r} is not available: this machine has {have}; "
                          "expected 'auto', 'cpu' or an existing 'cuda[:N]'")
    return name


# --- helpers ---------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (the last would silently win) and
    aliases (``*a``: a few lines of them expand to gigabytes; a params file never needs one)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"alias *{event.anchor} refused (params files hold plain values)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):  # `no:`/`on:` are booleans in YAML 1.1, `3:` an integer
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {_show(key)} is not a name (quote it, or fix the typo)", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (lines {seen[key].start_mark.line + 1} and "
                    f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> Any:
        # YAML 1.1 reads 015 as octal 13 and 1:30 as base-60 90: nobody means that in a params file
        if re.fullmatch(r"[-+]?0[0-7_]+|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+", node.value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} reads as an octal or base-60 number in YAML 1.1; write it in plain "
                "decimal", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: Any) -> Any:
        if ":" in node.value:
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} reads as a base-60 number in YAML 1.1; write it in plain decimal",
                node.start_mark)
        return super().construct_yaml_float(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _read_yaml(path: Path, *, what: str) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"{what} {str(path)!r} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    # ValueError: an integer beyond Python's digit limit; RecursionError: absurd nesting; TypeError: a list as a key
    except (ValueError, RecursionError, TypeError) as exc:
        raise ConfigError(f"{what} {str(path)!r} is not a usable params file ({str(exc)[:200]})") from None


def _check_choice(key: str, value: Any, allowed: list[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} {_show(value)} is not allowed; choose from {sorted(allowed)}")


def _check_range(key: str, value: float, lo: float | None, hi: float | None, *, lo_open: bool = False) -> None:
    """Refuse NaN, inf and values outside ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``); None means unbounded."""
    interval = f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    try:
        finite = math.isfinite(value)  # NaN compares False with every bound
    except OverflowError:  # an integer beyond any float
        raise ConfigError(f"{key} = {_show(value)} is out of range; expected a value in {interval}") from None
    if not finite:
        raise ConfigError(f"{key} = {_show(value)} is not a finite number; expected a value in {interval}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        raise ConfigError(f"{key} = {_show(value)} is out of range; expected a value in {interval}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'params'} must be a mapping, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    not_names = [k for k in raw if not isinstance(k, str)]
    if not_names:
        raise ConfigError(f"{prefix.rstrip('.') or 'params'} has key(s) {_show(not_names)} that are not names; "
                          f"known: {sorted(fields)}")
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {[prefix + k for k in unknown]}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in raw.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    shown = _show(value)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {shown}")
        (item_tp, _) = typing.get_args(tp)
        return tuple(_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {shown}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {shown}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {shown}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {shown}{_exponent_hint(value)}")
        try:
            return float(value)  # NaN and inf (YAML's .nan, .inf) are refused by each field's _check_range
        except OverflowError:
            raise ConfigError(f"{key} = {shown} is too large for a number; expected a finite value") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {shown}")
        return value
    if isinstance(tp, types.UnionType):  # pragma: no cover - no unions in the schema today
        raise ConfigError(f"{key}: union types are not supported")
    return value


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlong = 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 3


def _show(value: Any) -> str:
    """``repr(value)``, shortened: a message must stay one line whatever a params file holds."""
    return _SHORT.repr(value)


def _exponent_hint(value: Any) -> str:
    """Why a number-looking string is a string: PyYAML (YAML 1.1) reads ``1e-4`` as text, ``1.0e-4`` as a float."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", value.strip()):
        return " (a string: YAML 1.1 reads an exponent as a number only with a decimal point and a sign, e.g. 1.0e-4)"
    return ""
