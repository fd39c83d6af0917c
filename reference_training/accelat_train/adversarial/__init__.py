"""Adversarial examples: our fast torch attacks and what every attack shares (``attacks``),
the training methods built on them (``methods``), the evaluation attacks (Foolbox's,
``foolbox_attacks``; ART's, ``art_attacks``) and the robust evaluation by name (``robust``),
and the per-epoch monitor and the final test evaluation (``evaluation``)."""
