"""Keras adapter tests: silence one warning Keras itself raises under NumPy 2."""

from __future__ import annotations

import pytest

# Keras' backends call np.array(variable) on objects whose __array__ lacks the NumPy 2
# ``copy`` keyword; the warning is Keras' own (it repeats on every conversion) and says
# nothing about this code.
KERAS_NUMPY2_WARNING = "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "keras/" in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings(KERAS_NUMPY2_WARNING))
