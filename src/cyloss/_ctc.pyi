import numpy as np

def workspace_size(T: int, C: int, max_label: int, write_grad: bool) -> int: ...
def ctc_loop(
    x: np.ndarray, labels: np.ndarray, offsets: np.ndarray, label_length: np.ndarray,
    logit_length: np.ndarray, blank: int, logits: bool, zero_infinity: bool,
    grad_scale: np.ndarray, nll: np.ndarray, grad: np.ndarray | None, write_grad: bool,
    work: np.ndarray, n_threads: int,
) -> None: ...
