"""cyloss: deep-learning loss functions for NumPy pipelines.

Keras names and semantics by default, every PyTorch option, one reduction vocabulary,
and results that do not change with the thread count. See ``cyloss.show_config()`` for
the build in use.
"""

# The loss functions and classes; the elementwise ones come from the losses.ELEMENTWISE
# table, so the names are read from losses.__all__.
from cyloss import losses as _losses
from cyloss.losses import *  # noqa: F403
from cyloss._config import show_config
from cyloss.accumulate import Accumulator

__version__ = "0.1.0"

__all__ = ["__version__", "show_config", *_losses.__all__, "Accumulator"]
