"""Training of the victims: data from ``build/features``, the loop, resume state, FGSM retraining."""
