"""MoEfication (Zhang et al. 2022): split a dense FFN into experts without training.

The FFN's intermediate neurons are clustered by their rows of the first FFN matrix
(balanced k-means: every expert gets the same number of neurons); an expert is one
cluster, i.e. a slice of fc1's rows and the matching columns of fc2. Because the
activation is element-wise, the dense FFN output is exactly the sum of all experts'
outputs (plus fc2's bias), so a token can run only its top-k experts.

Legend: n - neurons (intermediate size), d - hidden size, e - experts, m - neurons per expert.
"""

from __future__ import annotations

import torch


def balanced_kmeans(rows: torch.Tensor, n_clusters: int, iters: int = 30,
                    seed: int = 0) -> torch.Tensor:
    """Cluster ids [n] for rows [n, d], every cluster holding exactly n / n_clusters rows.

    Lloyd iterations whose assignment step is balanced greedily: all (row, cluster)
    distances are sorted and a row goes to its nearest cluster that still has room.
    Rows are L2-normalised first, so clusters group neurons by the direction they read.
    """
    n = rows.shape[0]
    if n % n_clusters:
        raise ValueError(f"{n} neurons do not split into {n_clusters} equal experts")
    capacity = n // n_clusters
    points = torch.nn.functional.normalize(rows.double(), dim=1)  # [n, d]
    gen = torch.Generator().manual_seed(seed)
    centroids = points[torch.randperm(n, generator=gen)[:n_clusters]].clone()  # [e, d]
    labels = torch.full((n,), -1, dtype=torch.long)
    for _ in range(iters):
        new = _balanced_assign(torch.cdist(points, centroids), capacity)  # [n]
        if torch.equal(new, labels):
            break
        labels = new
        for c in range(n_clusters):
            centroids[c] = points[labels == c].mean(0)
    return labels


def _balanced_assign(dist: torch.Tensor, capacity: int) -> torch.Tensor:
    """Greedy capacity-constrained assignment from distances [n, e] (ties: lowest index)."""
    n, e = dist.shape
    order = torch.argsort(dist.reshape(-1), stable=True).tolist()
    labels = [-1] * n
    room = [capacity] * e
    placed = 0
    for flat in order:
        row, cluster = divmod(flat, e)
        if labels[row] >= 0 or room[cluster] == 0:
            continue
        labels[row] = cluster
        room[cluster] -= 1
        placed += 1
        if placed == n:
            break
    return torch.tensor(labels, dtype=torch.long)


def expert_order(labels: torch.Tensor) -> torch.Tensor:
    """Neuron permutation [n] that puts expert 0's neurons first, then expert 1's ..."""
    return torch.argsort(labels, stable=True)


def split_ffn(fc1_weight, fc1_bias, fc2_weight, labels, n_experts: int):
    """Per-expert weights: w1 [e, m, d], b1 [e, m], w2 [e, d, m] (fc2 bias stays shared)."""
    order = expert_order(labels)
    n, d = fc1_weight.shape
    m = n // n_experts
    w1 = fc1_weight[order].reshape(n_experts, m, d)
    b1 = fc1_bias[order].reshape(n_experts, m)
    w2 = fc2_weight[:, order].reshape(d, n_experts, m).permute(1, 0, 2)
    return w1.contiguous(), b1.contiguous(), w2.contiguous()


def centroids(w1: torch.Tensor, b1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity-router weights: each expert's mean fc1 row [e, d] and mean bias [e]
    (MoEfication's similarity-based selection: score = x · mean row + mean bias)."""
    return w1.mean(1), b1.mean(1)
