"""advaudio: a reproducible workbench for the adversarial robustness of audio classifiers."""

__version__ = "0.1.0"
