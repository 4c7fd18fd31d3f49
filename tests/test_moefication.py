"""sample_models/moefication.py: splitting a dense FFN into balanced experts (MoEfication)."""

import torch


def test_moefication_split_is_balanced_and_exact():
    from sample_models.moefication import balanced_kmeans, split_ffn

    gen = torch.Generator().manual_seed(0)
    fc1 = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    b1 = torch.randn(64, generator=gen, dtype=torch.float64)
    fc2 = torch.randn(8, 64, generator=gen, dtype=torch.float64)
    labels = balanced_kmeans(fc1, 4, seed=0)
    assert torch.bincount(labels).tolist() == [16, 16, 16, 16]
    w1, bb1, w2 = split_ffn(fc1, b1, fc2, labels, 4)
    x = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    dense = torch.relu(x @ fc1.T + b1) @ fc2.T
    parts = sum(torch.relu(x @ w1[e].T + bb1[e]) @ w2[e].T for e in range(4))
    assert torch.allclose(dense, parts, atol=1e-12)
    # neurons pointing the same way land in the same expert
    twins = torch.cat([fc1[:32], fc1[:32] * 2.0])
    twin_labels = balanced_kmeans(twins, 4, seed=1)
    assert (twin_labels[:32] == twin_labels[32:]).float().mean() > 0.9
