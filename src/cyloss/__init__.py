"""cyloss: deep-learning loss functions for NumPy pipelines.

Keras names and semantics by default, every PyTorch option, one reduction vocabulary,
and results that do not change with the thread count. See ``cyloss.show_config()`` for
the build in use.
"""

from cyloss.losses import (
    LOSSES,
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Huber,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SmoothL1,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    categorical_crossentropy,
    get,
    grad,
    grad_hess,
    huber,
    mae,
    mean_absolute_error,
    mean_squared_error,
    mse,
    smooth_l1,
    sparse_categorical_crossentropy,
    value_and_grad,
)
from cyloss._config import show_config
from cyloss.accumulate import Accumulator

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "show_config",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_absolute_error",
    "mean_squared_error",
    "huber",
    "smooth_l1",
    "mae",
    "mse",
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Huber",
    "SmoothL1",
    "LOSSES",
    "get",
    "value_and_grad",
    "grad",
    "grad_hess",
    "Accumulator",
]
