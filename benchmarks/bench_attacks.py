"""Project JSMA and NES (PIA) against reference implementations, same model, same victims, same run.

JSMA vs ART's ``SaliencyMapMethod``; NES vs foolbox's ``es_gradient_estimator`` wrapped around L2 BIM
(full probability access, i.e. an easier setting than PIA's top-k). Prints per-sample time and success.

    python benchmarks/bench_attacks.py --checkpoint build/model/model.pt --features build/features --n 4
"""

import argparse
import time

import foolbox as fb
import numpy as np
import torch
from art.attacks.evasion import SaliencyMapMethod
from art.estimators.classification import PyTorchClassifier

from advaudio.attacks import ATTACKS
from advaudio.attacks.victims import select_victims
from advaudio.evaluation.data import load_test_split
from advaudio.evaluation.verify import predict, verify_adversarials
from advaudio.models.checkpoint import load_checkpoint


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default="build/model/model.pt")
    ap.add_argument("--features", default="build/features")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--features-changed", type=int, default=50)
    ap.add_argument("--nes-steps", type=int, default=20)
    args = ap.parse_args()
    model, cfg = load_checkpoint(args.checkpoint, device="cpu")
    test = load_test_split(directory=args.features)
    x_all = torch.from_numpy(test.x)
    rows, targets = select_victims(labels=test.labels, predictions=predict(model=model, x=x_all).numpy(),
                                   n_victims=args.n, n_classes=len(test.class_names), seed=0)
    x, y, t = x_all[rows], torch.from_numpy(test.labels[rows]), torch.from_numpy(targets)
    n, d = len(x), x[0].numel()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)

    def report(label, adv, seconds):
        ok, l2 = verify_adversarials(model=model, x=x, adv=adv, labels=y, targets=t)
        print(f"{label:<34} {seconds / n:8.3f} s/sample  success {float(ok.float().mean()):.2f}  "
              f"mean L2 {float(l2[ok].mean()) if ok.any() else float('nan'):.3f}")
        return seconds / n

    print(f"model {cfg['model']} input {tuple(x.shape[1:])}, {n} victims, threads {torch.get_num_threads()}")
    jsma = ATTACKS.get("jsma")(max_iterations=args.features_changed, theta=1.0)
    (_, adv, _), s = timed(lambda: jsma(fmodel, x, crit, epsilons=None))
    ours = report("jsma (project, single-feature)", adv, s)
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=len(test.class_names), clip_values=(0.0, 1.0))
    art = SaliencyMapMethod(clf, theta=1.0, gamma=args.features_changed / d, batch_size=n, verbose=False)
    onehot = np.eye(len(test.class_names), dtype=np.float32)[targets]
    adv_np, s = timed(lambda: art.generate(x.numpy(), y=onehot))
    ref = report("jsma (ART SaliencyMapMethod)", torch.from_numpy(adv_np).float(), s)
    print(f"jsma time ratio project/ART: {ours / ref:.2f}")

    pia = ATTACKS.get("pia")(steps=args.nes_steps, samples=50)
    (_, adv, _), s = timed(lambda: pia(fmodel, x, crit, epsilons=0.3, starting_pool=x_all))
    ours = report(f"pia NES (project, {pia.queries // n} q/sample)", adv, s)
    es_bim = fb.gradient_estimators.es_gradient_estimator(fb.attacks.L2BasicIterativeAttack, samples=50,
                                                          sigma=0.001, bounds=(0, 1), clip=True)
    attack = es_bim(steps=args.nes_steps, rel_stepsize=0.25)
    (_, adv, _), s = timed(lambda: attack(fmodel, x, crit, epsilons=0.3 * np.sqrt(d)))
    ref = report("NES (foolbox ES estimator + BIM)", adv, s)
    print(f"NES time ratio project/foolbox: {ours / ref:.2f}")


if __name__ == "__main__":
    main()
