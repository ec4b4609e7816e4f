"""Project JSMA and NES (PIA) against reference implementations, same model, same victims, same run.

JSMA vs ART's ``SaliencyMapMethod``: same model object, victims, targets, theta and the same budget of
perturbed features F (``--features-changed``): ART changes two features per iteration while
``used / d <= gamma``, so it gets ``gamma = (F - 2) / d``; the project gets ``gamma = F / d`` and
``max_iterations = F / 2`` (two features per iteration, like ART). Both get one untimed warm-up call.
The project's single-feature map is timed too, for reference. NES vs foolbox's ``es_gradient_estimator``
wrapped around L2 BIM (full probability access, i.e. an easier setting than PIA's top-k). Prints per-sample
time, success and perturbation sizes.

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
from advaudio.evaluation.pool_source import ReaderPool
from advaudio.evaluation.victims import select_victims
from advaudio.features.store import open_split, read_meta
from advaudio.evaluation.verify import verify_adversarials
from advaudio.models.checkpoint import load_checkpoint
from advaudio.models.predict import predict_batches

BATCH = 64  # test images per forward batch (predictions and PIA's starting pool)


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
    ap.add_argument("--theta", type=float, default=0.1, help="JSMA change per feature (the ladder's value)")
    ap.add_argument("--nes-steps", type=int, default=20)
    args = ap.parse_args()
    model, cfg = load_checkpoint(args.checkpoint, device="cpu")
    meta = read_meta(args.features)
    test = open_split(args.features, "test", meta=meta)  # streamed: only the victims are held
    labels, n_classes = test.y.numpy(), int(meta["n_classes"])
    predictions = predict_batches(model, (xb for xb, _ in test.batches(batch_size=BATCH))).argmax(dim=1).numpy()
    rows, targets = select_victims(labels=labels, predictions=predictions, n_victims=args.n, n_classes=n_classes,
                                   seed=0)
    x, y, t = test.read(rows), torch.from_numpy(labels[rows]), torch.from_numpy(targets)
    n, d = len(x), x[0].numel()
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    crit = fb.criteria.TargetedMisclassification(t)

    def report(label, adv, seconds):
        ok, l2 = verify_adversarials(model=model, x=x, adv=adv, labels=y, targets=t)
        l0 = ((adv - x).flatten(1) != 0).sum(1).float()
        print(f"{label:<34} {seconds / n:8.3f} s/sample  success {float(ok.float().mean()):.2f}  "
              f"mean L2 {float(l2[ok].mean()) if ok.any() else float('nan'):.3f}  "
              f"mean L0 {float(l0[ok].mean()) if ok.any() else float('nan'):.1f}")
        return seconds / n

    print(f"model {cfg['model']} input {tuple(x.shape[1:])}, {n} victims, threads {torch.get_num_threads()}")
    budget = args.features_changed
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=n_classes, clip_values=(0.0, 1.0))
    onehot = np.eye(n_classes, dtype=np.float32)[targets]

    def project_jsma(pairs, xs=x, c=crit):
        attack = ATTACKS.get("jsma")(max_iterations=budget // 2 if pairs else budget, theta=args.theta,
                                     gamma=budget / d, pairs=pairs)
        return attack(fmodel, xs, c, epsilons=None)[1]

    def art_jsma(xs=x, ts=onehot):
        # ART keeps going while used / d <= gamma, so gamma = (F - 2) / d caps it at F features too
        art = SaliencyMapMethod(clf, theta=args.theta, gamma=(budget - 2) / d, batch_size=len(xs), verbose=False)
        return torch.from_numpy(art.generate(xs.numpy(), y=ts)).float()

    project_jsma(True, x[:1], fb.criteria.TargetedMisclassification(t[:1]))  # warm-up (untimed)
    art_jsma(x[:1], onehot[:1])
    adv, s = timed(lambda: project_jsma(True))
    ours = report("jsma (project, JSMA-F pairs top-32)", adv, s)
    adv, s = timed(lambda: project_jsma(False))
    single = report("jsma (project, JSMA-F single)", adv, s)
    adv, s = timed(art_jsma)
    ref = report("jsma (ART SaliencyMapMethod)", adv, s)
    print(f"jsma theta {args.theta}, max perturbed features {budget}; time ratio project/ART: {ours / ref:.2f} "
          f"(single-feature/ART {single / ref:.2f})")

    pia = ATTACKS.get("pia")(steps=args.nes_steps, samples=50)
    stats = {}
    pool = ReaderPool(test, batch_size=BATCH)  # the test split, read in batches
    (_, adv, _), s = timed(lambda: pia(fmodel, x, crit, epsilons=0.3, starting_pool=pool, stats=stats))
    ours = report(f"pia NES (project, {stats['queries'] // n} q/sample)", adv, s)
    es_bim = fb.gradient_estimators.es_gradient_estimator(fb.attacks.L2BasicIterativeAttack, samples=50,
                                                          sigma=0.001, bounds=(0, 1), clip=True)
    attack = es_bim(steps=args.nes_steps, rel_stepsize=0.25)
    (_, adv, _), s = timed(lambda: attack(fmodel, x, crit, epsilons=0.3 * np.sqrt(d)))
    ref = report("NES (foolbox ES estimator + BIM)", adv, s)
    print(f"NES time ratio project/foolbox: {ours / ref:.2f}")


if __name__ == "__main__":
    main()
