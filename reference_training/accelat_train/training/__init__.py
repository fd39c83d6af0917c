"""Training a run: the loop (``loop``), its events and listeners (``events``, ``listeners``),
what it is built from (``build``, ``optimizers``, ``schedule``, ``lr_range``), its state
(``record``, ``checkpoints``) and its distributed plumbing (``distributed``)."""
