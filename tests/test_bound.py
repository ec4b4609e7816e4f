"""Table II's L2 bound at the input size in use (advaudio.evaluation.bound)."""

import math
from pathlib import Path

import pytest
import yaml

from advaudio.config import params_from_dict
from advaudio.evaluation.bound import effective_bound, study_input_shape

REPO = Path(__file__).resolve().parents[1]


def _profiles(tmp_path: Path, *, height: int, width: int, tonnetz_height: int) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    spec = {"height": height, "width": width, "tonnetz_height": tonnetz_height}
    (d / "study.yaml").write_text(yaml.safe_dump({"spectrogram": spec}))
    return d


def test_study_rms_keeps_the_per_element_rms(tmp_path):
    profiles = _profiles(tmp_path, height=64, width=100, tonnetz_height=36)
    params = params_from_dict({"attack": {"bound": 3.0, "bound_scaling": "study_rms"}})
    # study sizes: 64 x 100 = 6400 elements (stft), 100 x 100 = 10000 (stft_tonnetz)
    b = effective_bound(params=params, representation="stft", input_shape=(1, 16, 25), profiles_dir=profiles)
    assert b == pytest.approx(3.0 * math.sqrt(400 / 6400)) and b == pytest.approx(0.75)
    assert b / math.sqrt(400) == pytest.approx(3.0 / math.sqrt(6400))  # same RMS per element
    bt = effective_bound(params=params, representation="stft_tonnetz", input_shape=(1, 25, 16),
                         profiles_dir=profiles)
    assert bt == pytest.approx(3.0 * math.sqrt(400 / 10000))
    at_study = effective_bound(params=params, representation="dwt_tonnetz", input_shape=(1, 100, 100),
                               profiles_dir=profiles)
    assert at_study == pytest.approx(3.0)


def test_none_uses_the_bound_as_it_is(tmp_path):
    profiles = _profiles(tmp_path, height=64, width=100, tonnetz_height=36)
    params = params_from_dict({"attack": {"bound": 2.5, "bound_scaling": "none"}})
    assert effective_bound(params=params, representation="dwt", input_shape=(1, 8, 8), profiles_dir=profiles) == 2.5


def test_the_repositorys_study_profile_gives_the_studys_shapes():
    params = params_from_dict({})
    assert study_input_shape(params=params, representation="stft", profiles_dir=REPO / "profiles") == (768, 1568)
    assert study_input_shape(params=params, representation="dwt_tonnetz",
                             profiles_dir=REPO / "profiles") == (1308, 1568)


def test_bad_scaling_is_refused():
    from advaudio.errors import ConfigError

    with pytest.raises(ConfigError, match=r"attack.bound_scaling 'rms' is not allowed; choose from \['none', 'study_rms'\]"):
        params_from_dict({"attack": {"bound_scaling": "rms"}})
