from typing import Final

import numpy as np
import numpy.typing as npt

KINDS: Final[dict[str, int]]
MAE: Final[int]
MSE: Final[int]
HUBER: Final[int]
SMOOTH_L1: Final[int]
LABEL: Final[int]
PROB_RANGE: Final[int]
PROB_NEG: Final[int]
ROW_ZERO: Final[int]
TARGET: Final[int]

# (num, den, count, err, err_i, err_k)
_Result = tuple[float, float, int, int, int, int]
_F = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_W = npt.NDArray[np.float64] | None

def regression(
    kind: int, param: float, y_true: _F, y_pred: _F, weight: _W, has_weight: bool,
    loss_out: _F | None, write_out: bool, n_threads: int,
    grad_out: _F | None = ..., hess_out: _F | None = ..., grad_scale: float = ...,
) -> _Result: ...
def binary_labels(y_true: _F) -> float: ...
def binary(
    y_true: _F, y_pred: _F, weight: _W, has_weight: bool,
    pos_weight: npt.NDArray[np.float64], from_logits: bool, smoothing: float,
    lo: float, hi: float, loss_out: _F | None, write_out: bool, n_threads: int,
    grad_out: _F | None = ..., hess_out: _F | None = ..., grad_scale: float = ...,
) -> _Result: ...
def categorical(
    y_true: _F, y_pred: _F, weight: _W, has_weight: bool, from_logits: bool,
    smoothing: float, lo: float, hi: float, loss_out: _F | None, write_out: bool,
    n_threads: int, grad_out: _F | None = ..., hess_out: _F | None = ...,
) -> _Result: ...
def sparse(
    labels: npt.NDArray[np.int64], y_pred: _F, weight: _W, has_weight: bool,
    class_weight: _W, has_class_weight: bool, has_ignore: bool, ignore_index: int,
    from_logits: bool, smoothing: float, lo: float, hi: float, loss_out: _F | None,
    write_out: bool, n_threads: int,
    grad_out: _F | None = ..., hess_out: _F | None = ..., grad_scale: float = ...,
    log_probs: bool = ...,
) -> _Result: ...
ROW_KL: int
ROW_CAT_HINGE: int
ROW_COSINE: int
KL_KERAS: int
KL_LOG_INPUT: int
KL_LOG_TARGET: int
def catalogue_rows(
    kind: int, mode: int, param: float, y_true: _F, y_pred: _F, weight: _W,
    has_weight: bool, loss_out: _F | None, write_out: bool, n_threads: int,
    grad_out: _F | None = ..., grad_scale: float = ...,
) -> _Result: ...
def simd_path() -> str: ...
SIMD_PATHS: tuple[str, ...]
def simd_available() -> tuple[str, ...]: ...
def simd_current() -> str: ...
def _set_simd(path: str) -> str: ...
def vecmath(name: str, x: npt.NDArray[np.float64], out: npt.NDArray[np.float64]) -> None: ...

# Issue #14's pair losses (_pairs.pxi)
OVERLAP_KINDS: Final[dict[str, int]]
VAR_NEGATIVE: Final[int]

def overlap(
    kind: int, alpha: float, beta: float, y_true: _F, y_pred: _F, weight: _W,
    has_weight: bool, loss_out: _F | None, write_out: bool, n_threads: int,
    grad_out: _F | None = ...,
) -> _Result: ...
def margin_ranking(
    margin: float, y_true: _F, x1: _F, x2: _F, weight: _W, has_weight: bool,
    loss_out: _F | None, write_out: bool, n_threads: int,
    grad1_out: _F | None = ..., grad2_out: _F | None = ...,
) -> _Result: ...
def gaussian_nll(
    eps: float, full: bool, y_true: _F, x: _F, var: _F, weight: _W, has_weight: bool,
    loss_out: _F | None, write_out: bool, n_threads: int,
    gx_out: _F | None = ..., gv_out: _F | None = ...,
) -> _Result: ...
def cosine_embedding(
    margin: float, y_true: _F, x1: _F, x2: _F, weight: _W, has_weight: bool,
    loss_out: _F | None, write_out: bool, n_threads: int,
    grad1_out: _F | None = ..., grad2_out: _F | None = ...,
) -> _Result: ...
def triplet_margin(
    margin: float, p: float, eps: float, swap: bool, anchor: _F, positive: _F,
    negative: _F, weight: _W, has_weight: bool, loss_out: _F | None, write_out: bool,
    n_threads: int, ga_out: _F | None = ..., gp_out: _F | None = ...,
    gn_out: _F | None = ...,
) -> _Result: ...
