"""What may be plugged into the training loop: the listeners and what they hear.

``callback`` holds the contract: :class:`~accelat_train.callbacks.callback.Callback` (the
hooks), :class:`~accelat_train.callbacks.callback.RunView` (what a listener sees of the run)
and ``Callbacks`` (the listeners in order); ``record`` the epoch's record and the run's
counters. The built-in listeners, one a module: ``averaging`` (weight averaging),
``rollback`` (FGSM-RS's catastrophic-overfitting rollback), ``early_stopping``, ``progress``,
``loggers`` (CSV, TensorBoard, W&B), ``metrics_log`` (``metrics.jsonl``),
``checkpoint_saver`` (``best.pt``, ``checkpoint.pt``) and ``run_report`` (``report.json``).
Which a run has, and in what order: :mod:`accelat_train.training.listeners`.
"""
