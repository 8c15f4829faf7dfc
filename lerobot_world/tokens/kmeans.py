"""K-means in torch: greedy k-means++ init on a subsample, chunked Lloyd iterations, dead-centroid reseeding.

Written by hand (instead of scikit-learn / faiss, neither installed) because the fit must run on a
GPU when one is present, be deterministic for a seed, and handle 273k x 768 x V=1024 in minutes on
two CPU cores: distances are float32 matmuls over chunks of rows (the only O(N*D*V) work), done
only for points whose Hamerly bounds allow a change; the centroid update is a segmented sum (no
atomics, so also deterministic on CUDA).
"""

import math
from dataclasses import dataclass

import torch

from lerobot_world.devices import resolve_device


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # float32 [k, D], on CPU
    labels: torch.Tensor  # int64 [N], on CPU: assignment to the final centroids
    inertia: float  # sum of squared distances to the assigned centroid
    n_iter: int
    converged: bool
    n_reseeded: int  # empty clusters re-seeded over the whole fit


def _sq_dists(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor) -> torch.Tensor:
    """||x - c||^2 for all pairs, [n, k], via one matmul (clamped at 0 against cancellation)."""
    x_sq = (x * x).sum(1, keepdim=True)
    return torch.addmm(c_sq.unsqueeze(0) + x_sq, x, c.T, alpha=-2.0).clamp_(min=0.0)


def _partial_dists(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor) -> torch.Tensor:
    """||c||^2 - 2 x.c: ranks centroids like ||x - c||^2 (||x||^2 is added back to the winners only,
    saving two passes over the [n, k] matrix)."""
    return torch.addmm(c_sq.unsqueeze(0), x, c.T, alpha=-2.0)


def assign(
    x: torch.Tensor, centroids: torch.Tensor, chunk_size: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of every row: (labels int64 [N], squared distance [N]), chunked over rows."""
    c = centroids.to(device=x.device, dtype=x.dtype)
    c_sq = (c * c).sum(1)
    labels = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dists = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], chunk_size):
        xs = x[s : s + chunk_size]
        v, labels[s : s + chunk_size] = _partial_dists(xs, c, c_sq).min(1)
        dists[s : s + chunk_size] = (v + (xs * xs).sum(1)).clamp_(min=0.0)
    return labels, dists


def kmeans_plusplus(x: torch.Tensor, k: int, generator: torch.Generator, n_trials: int | None = None):
    """Greedy k-means++ (as in scikit-learn): each step samples ``n_trials`` candidates by D^2 and
    keeps the one that lowers the potential most. Sampling uses a CPU generator (deterministic)."""
    n = x.shape[0]
    n_trials = n_trials or 2 + int(math.log(k))
    centers = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    first = int(torch.randint(n, (1,), generator=generator))
    centers[0] = x[first]
    x_sq = (x * x).sum(1)
    closest = (x_sq - 2 * x @ centers[0] + centers[0] @ centers[0]).clamp_(min=0)
    for i in range(1, k):
        weights = closest.double().cpu()
        if float(weights.sum()) <= 0:  # fewer distinct points than k: any point will do
            weights = torch.ones(n, dtype=torch.float64)
        cand = torch.multinomial(weights, n_trials, replacement=True, generator=generator).to(x.device)
        xc = x[cand]
        d = (x_sq.unsqueeze(1) - 2 * x @ xc.T + (xc * xc).sum(1).unsqueeze(0)).clamp_(min=0)  # [n, trials]
        d = torch.minimum(d, closest.unsqueeze(1))
        best = int(d.sum(0).argmin())
        centers[i] = xc[best]
        closest = d[:, best].contiguous()
    return centers


def _segment_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sum of rows (float64) and counts; sort + segment_reduce is deterministic on CPU and
    CUDA (index_add_ uses atomics on CUDA) and faster than index_add_ on CPU."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=k)
    sums = torch.segment_reduce(x[order], "sum", lengths=counts, axis=0, unsafe=True)
    return sums.double(), counts


def _top2(x: torch.Tensor, c: torch.Tensor, chunk_size: int):
    """Nearest and second-nearest centroid: (labels, d1^2, d2^2), chunked over rows."""
    c_sq = (c * c).sum(1)
    n = x.shape[0]
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    d1 = torch.empty(n, dtype=x.dtype, device=x.device)
    d2 = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
    for s in range(0, n, chunk_size):
        xs = x[s : s + chunk_size]
        d = _partial_dists(xs, c, c_sq)
        xs_sq = (xs * xs).sum(1)
        if c.shape[0] == 1:
            d1[s : s + chunk_size], labels[s : s + chunk_size] = (d[:, 0] + xs_sq).clamp_(min=0.0), 0
            continue
        v, i = torch.topk(d, 2, dim=1, largest=False, sorted=True)
        v = (v + xs_sq.unsqueeze(1)).clamp_(min=0.0)
        labels[s : s + chunk_size], d1[s : s + chunk_size], d2[s : s + chunk_size] = i[:, 0], v[:, 0], v[:, 1]
    return labels, d1, d2


def kmeans_fit(
    x: torch.Tensor,
    k: int,
    seed: int = 0,
    max_iter: int = 50,
    tol: float = 1e-4,
    init_samples: int | None = None,
    chunk_size: int = 8192,
    device: str | torch.device | None = "auto",
    progress: bool = True,
) -> KMeansResult:
    """Fit k centroids to the rows of ``x`` ([N, D], any float dtype; computed in float32).

    Lloyd's algorithm with Hamerly's bounds (J. Hamerly, "Making k-means even faster", SDM 2010):
    each point keeps an upper bound on the distance to its centroid and a lower bound on the
    distance to any other; only points whose bounds overlap get their distances recomputed (one
    matmul on that subset), so late iterations touch a small fraction of the data. The bounds
    carry a float32 rounding margin, so the assignments are those of plain Lloyd.

    Stops after ``max_iter`` iterations or when the squared centroid shift falls below ``tol``
    times the mean per-dimension variance (scikit-learn's criterion). Empty clusters are
    re-seeded with the points farthest from their centroid. Deterministic for a given seed, data
    and device.
    """
    n, dim = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= number of points, got k={k} for {n} points")
    dev = torch.device(resolve_device(device))
    x = x.to(device=dev, dtype=torch.float32).contiguous()
    gen = torch.Generator().manual_seed(seed)
    # k-means++ on a subsample (its k sequential steps each touch every sample point; a few
    # points per centroid suffice to seed, as in scikit-learn's MiniBatchKMeans init_size = 3k).
    m = min(n, init_samples or max(4 * k, 2048))
    sub = torch.randperm(n, generator=gen)[:m].sort().values.to(dev) if m < n else None
    threads = torch.get_num_threads()
    if dev.type == "cpu":  # the init is ~k tiny ops: thread start-up/barriers cost more than they save
        torch.set_num_threads(1)
    try:
        centers = kmeans_plusplus(x if sub is None else x[sub], k, gen)
    finally:
        torch.set_num_threads(threads)
    threshold = tol * float(x.var(0).mean())
    x_sq = (x * x).sum(1)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=f"k-means (k={k}, {n}x{dim}, {dev.type})", unit="it")
    labels, d1, d2 = _top2(x, centers, chunk_size)
    upper, lower = d1.sqrt(), d2.sqrt()
    converged, n_reseeded, it = False, 0, 0
    for it in range(1, max_iter + 1):
        sums = torch.zeros(k, dim, dtype=torch.float64, device=dev)
        counts = torch.zeros(k, dtype=torch.long, device=dev)
        for s in range(0, n, chunk_size):
            cs, cc = _segment_sums(x[s : s + chunk_size], labels[s : s + chunk_size], k)
            sums += cs
            counts += cc
        new = (sums / counts.clamp(min=1).unsqueeze(1)).float()
        empty = (counts == 0).nonzero().flatten()
        if len(empty):  # re-seed empty clusters with the worst-fitted points (distinct points)
            exact = torch.cat(
                [((x[s : s + chunk_size] - centers[labels[s : s + chunk_size]]) ** 2).sum(1) for s in range(0, n, chunk_size)]
            )
            new[empty] = x[torch.topk(exact, len(empty)).indices]
            n_reseeded += len(empty)
        delta = ((new.double() - centers.double()) ** 2).sum(1)
        shift = float(delta.sum())
        delta = delta.sqrt().float()
        centers = new
        if shift <= threshold and len(empty) == 0:
            converged = True
            if bar is not None:
                bar.update(1)
            break
        # Hamerly bound update, then recompute only points whose bounds overlap.
        c_sq = (centers * centers).sum(1)
        upper += delta[labels]
        lower -= delta.max()
        cdist = _sq_dists(centers, centers, c_sq).sqrt_().fill_diagonal_(float("inf"))
        half_gap = 0.5 * cdist.min(1).values if k > 1 else torch.full((1,), float("inf"), device=dev)
        # float32 error of ||x||^2 - 2x.c + ||c||^2 is ~1e-6 (||x||^2 + ||c||^2): keep a margin.
        margin = (1e-5 * (x_sq + c_sq.max())).sqrt()
        bound = torch.maximum(lower, half_gap[labels]) - 2 * margin
        cand = (upper > bound).nonzero().flatten()
        if len(cand):
            tight = ((x[cand] - centers[labels[cand]]) ** 2).sum(1).sqrt()
            upper[cand] = tight
            cand = cand[tight > bound[cand]]
        if len(cand):
            lab, a, b = _top2(x[cand], centers, chunk_size)
            labels[cand], upper[cand], lower[cand] = lab, a.sqrt(), b.sqrt()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(recomputed=f"{len(cand) / n:.1%}", shift=f"{shift:.3g}")
    if bar is not None:
        bar.close()
    labels, dists = assign(x, centers, chunk_size)
    return KMeansResult(
        centroids=centers.cpu(),
        labels=labels.cpu(),
        inertia=float(dists.double().sum()),
        n_iter=it,
        converged=converged,
        n_reseeded=n_reseeded,
    )
