"""Training a run: the loop (``loop``: ``train``, ``run_plan``), the run resolved once before
it (``plan``: ``plan_run``, from ``resume``, ``build``, ``lr_finder`` and ``run_schedule``),
the trainer that steps it (``trainer``), the listeners a run has (``listeners``), what its
``checkpoint.pt`` holds (``run_checkpoint``), its optimizers (``optimizers``), the network's
check against the data (``network_check``), ``fit`` for a user's own model and data, and the
distributed plumbing (``distributed``). What listens is :mod:`accelat_train.callbacks`."""
