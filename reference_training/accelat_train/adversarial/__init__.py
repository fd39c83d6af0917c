"""Adversarial examples: the attacks (``attacks``: our PGD and FGSM-RS, Foolbox glue), the
training methods built on them (``methods``), the evaluation attacks (``robust``: Foolbox and
ART) and the per-epoch and final robust evaluations (``evaluation``)."""
