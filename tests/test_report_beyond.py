"""The grid's "Beyond the study" section (advaudio.report.beyond): which runs it lists and what each row says."""

from __future__ import annotations

from advaudio.report.beyond import KEYS, beyond_markdown, beyond_runs

RUN = {"accuracy_retrained": 0.8875, "pgd_accuracy_retrained": 0.6625, "pgd_accuracy_minus_fgsm_p": 0.0002,
       "bounded_fooling_rate": 0.0875, "pgd_bounded_fooling_rate": 0.0625, "pgd_bounded_fooling_rate_p": 0.24,
       "transfer_masking_flag": 1.0, "transfer_masking_gap": 12.5, "transfer_masking_p": 0.03, "accuracy": 0.81}


def test_runs_without_the_stages_are_left_out_and_rows_state_the_numbers():
    old = {k: v for k, v in RUN.items() if not k.startswith("transfer_")}  # a revision before the transfer stage
    seeds = {("synth", "stft", "resnet56"): {0: RUN, 1: old}, ("synth", "stft", "alexnet"): {0: old}}
    runs = beyond_runs(seeds)
    assert [(r["model"], r["seed"]) for r in runs] == [("resnet56", 0)]
    assert set(runs[0]) == {"dataset", "representation", "model", "seed", *KEYS}  # accuracy is Table I's, not here
    text = "\n".join(beyond_markdown(runs))
    assert ("| synth / stft / resnet56, seed 0 | 88.8 / 66.2 | < 0.001 | 8.8 / 6.2 | 0.24 | +12.5, 0.03 | **yes** |"
            in text)
    assert beyond_markdown([]) == []
