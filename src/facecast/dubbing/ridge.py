"""Ridge regression in closed form, linear and with a Gaussian (RBF) kernel, and their
cross-validation over contiguous folds: the per-speaker mouth model's learners (dubbing.learned).
Seconds of CPU for a video's 10-60 s of speech, no GPU.

    Ridge         a fitted linear model: predict(X [n, d]) -> [n, k]
    fit_ridge     (X, Y, alpha) -> Ridge; the columns are standardised first, ``alpha`` is per frame
    out_of_fold   (X, Y, alphas, folds) -> {alpha: predictions [n, k]}, each frame predicted by the
                  model fitted without its fold (one eigen-decomposition per fold serves every alpha)
    KernelRidge   a fitted kernel model (the same interface): a smooth nonlinear function of the
                  standardised cues, as a weighted sum of Gaussians around (up to KERNEL_ROWS of)
                  the training frames
    fit_kernel_ridge, kernel_out_of_fold   as the linear ones
    folds         n frames -> k contiguous blocks (neighbouring frames are alike: random folds would
                  score a model on near copies of its training frames)

The linear algebra runs in torch (float64), which follows torch's thread setting (dub uses one
thread): numpy's OpenBLAS spins up its own threads, and on a loaded 2-core machine they cost 5-16 s
of wall time for 0.5-1.5 s of CPU (2 s with one thread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KERNEL_ROWS", "KernelRidge", "Ridge", "fit_kernel_ridge", "fit_ridge", "folds", "kernel_out_of_fold",
           "out_of_fold"]

KERNEL_ROWS = 600
"""Most training frames a kernel model is built on (an even subsample beyond: neighbouring frames
are near copies): 20 s at 30 fps, so the kernel's n x n algebra stays ~1 s of CPU whatever the
frame rate. Link 1 on the 12 Obama pairs was the same with 450, 600 or all (<= 900) frames."""


@dataclass(frozen=True)
class Ridge:
    """y = ((x - mean) / scale) @ coef + intercept."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # [d, k]
    intercept: np.ndarray  # [k]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (((np.asarray(X, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept).astype(np.float32)


def _standard(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(0)
    return mean, np.maximum(X.std(0), 1e-6)


def fit_ridge(X: np.ndarray, Y: np.ndarray, alpha: float) -> Ridge:
    """Ridge of Y [n, k] on X [n, d] (standardised columns; penalty ``alpha`` x n on the squared
    weights, so alpha means the same for any number of frames)."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
        raise ValueError(f"fit_ridge: X {X.shape} and Y {Y.shape} must be [n, d] and [n, k] with n >= 2")
    import torch

    mean, scale = _standard(X)
    Z = torch.from_numpy((X - mean) / scale)
    ym = Y.mean(0)
    A = Z.T @ Z + alpha * len(Z) * torch.eye(Z.shape[1], dtype=torch.float64)
    coef = torch.linalg.solve(A, Z.T @ torch.from_numpy(Y - ym)).numpy()
    return Ridge(mean, scale, coef, ym)


def folds(n: int, k: int) -> list[np.ndarray]:
    """k boolean masks [n] of contiguous, nearly equal blocks (the held-out frames of each fold)."""
    edges = np.linspace(0, n, k + 1).round().astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = np.zeros(n, bool)
        m[a:b] = True
        out.append(m)
    return out


def out_of_fold(X: np.ndarray, Y: np.ndarray, alphas, held: list[np.ndarray]) -> dict[float, np.ndarray]:
    """{alpha: [n, k]} predictions of each held-out block (``held``: masks from ``folds``) by the
    ridge fitted on the other frames; frames in no block stay NaN."""
    import torch

    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    out = {float(a): np.full(Y.shape, np.nan) for a in alphas}
    for te in held:
        tr = ~te
        if tr.sum() < 2 or not te.any():
            continue
        mean, scale = _standard(X[tr])
        Z = torch.from_numpy((X[tr] - mean) / scale)
        ym = Y[tr].mean(0)
        s, V = torch.linalg.eigh(Z.T @ Z)
        proj = V.T @ (Z.T @ torch.from_numpy(Y[tr] - ym))  # [d, k]
        Zt = torch.from_numpy((X[te] - mean) / scale) @ V
        for a in out:
            out[a][te] = (Zt @ (proj / (s.clamp_min(0.0) + a * tr.sum())[:, None])).numpy() + ym
    return out


@dataclass(frozen=True)
class KernelRidge:
    """y = sum_j coef[j] exp(-gamma |z - basis[j]|^2) + intercept, z = (x - mean) / scale."""

    mean: np.ndarray
    scale: np.ndarray
    basis: np.ndarray  # [m, d] standardised training frames
    gamma: float
    coef: np.ndarray  # [m, k]
    intercept: np.ndarray  # [k]

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        Z = torch.from_numpy((np.asarray(X, np.float64) - self.mean) / self.scale)
        K = _rbf(Z, torch.from_numpy(self.basis), self.gamma)
        return (K @ torch.from_numpy(self.coef)).numpy().astype(np.float32) + self.intercept.astype(np.float32)


def _rbf(A, B, gamma: float):
    """Gaussian kernel matrix [len(A), len(B)] of torch float64 rows."""
    import torch

    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None] - 2 * A @ B.T
    return torch.exp(-gamma * d.clamp_min(0.0))


def _rows(mask: np.ndarray) -> np.ndarray:
    """Indices of ``mask``'s frames, evenly thinned to at most KERNEL_ROWS."""
    idx = np.flatnonzero(mask)
    if len(idx) > KERNEL_ROWS:
        idx = idx[np.linspace(0, len(idx) - 1, KERNEL_ROWS).round().astype(int)]
    return idx


def _gamma(d: int) -> float:
    """1 / (2 d): standardised cues lie ~sqrt(2 d) apart, so a typical pair weighs exp(-1)."""
    return 1.0 / (2.0 * max(d, 1))


def fit_kernel_ridge(X: np.ndarray, Y: np.ndarray, alpha: float) -> KernelRidge:
    """Kernel ridge of Y [n, k] on X [n, d] (standardised columns, Gaussian kernel of width
    ``_gamma``; penalty ``alpha`` x n on the function's kernel norm)."""
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y) or len(X) < 2:
        raise ValueError(f"fit_kernel_ridge: X {X.shape} and Y {Y.shape} must be [n, d] and [n, k] with n >= 2")
    import torch

    idx = _rows(np.ones(len(X), bool))
    mean, scale = _standard(X[idx])
    Z = torch.from_numpy((X[idx] - mean) / scale)
    gamma = _gamma(X.shape[1])
    ym = Y[idx].mean(0)
    K = _rbf(Z, Z, gamma) + alpha * len(idx) * torch.eye(len(idx), dtype=torch.float64)
    coef = torch.linalg.solve(K, torch.from_numpy(Y[idx] - ym)).numpy()
    return KernelRidge(mean, scale, Z.numpy(), gamma, coef, ym)


def kernel_out_of_fold(X: np.ndarray, Y: np.ndarray, alphas, held: list[np.ndarray]) -> dict[float, np.ndarray]:
    """out_of_fold for fit_kernel_ridge (one eigen-decomposition of the kernel per fold)."""
    import torch

    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    out = {float(a): np.full(Y.shape, np.nan) for a in alphas}
    gamma = _gamma(X.shape[1])
    for te in held:
        tr = _rows(~te)
        if len(tr) < 2 or not te.any():
            continue
        mean, scale = _standard(X[tr])
        Z = torch.from_numpy((X[tr] - mean) / scale)
        ym = Y[tr].mean(0)
        s, V = torch.linalg.eigh(_rbf(Z, Z, gamma))
        proj = V.T @ torch.from_numpy(Y[tr] - ym)
        Kt = _rbf(torch.from_numpy((X[te] - mean) / scale), Z, gamma) @ V
        for a in out:
            out[a][te] = (Kt @ (proj / (s.clamp_min(0.0) + a * len(tr))[:, None])).numpy() + ym
    return out
