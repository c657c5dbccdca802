"""Exact top-k inner-product search, the nearest-neighbour step under every retrieval score.

Two backends give the same neighbours: faiss `IndexFlatIP` (what XTREME and LASER call) and stilts'
own blocked search, so faiss is optional. The own search multiplies blocks of rows into one reused
buffer (numpy's BLAS on CPU, torch on a GPU) and keeps a running top-k, so its memory is one block
plus the outputs at any size, and it never copies the keys (faiss's index does). BUCC mining needs
both directions of one similarity matrix; `knn_both_ways` selects them from each block at once, so
the matrix is computed once instead of twice.

Where scores tie exactly, which of them is kept, and in which order, may differ from faiss.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported by the searches themselves: the task registry stays light
    import torch

    Array = np.ndarray | torch.Tensor
BACKENDS = ("auto", "faiss", "torch")
# Block shapes, measured fastest on CPU (benchmarks/retrieval_search.py). One way: at most KEY_BLOCK
# keys wide and as many query rows as fit BUFFER_CELLS similarities (32 MiB of float32), so each query
# row's running top-k merges rarely. Both ways: square blocks of at most SQUARE_BLOCK rows (64 MiB),
# since each block's columns feed the keys' running top-k as well.
KEY_BLOCK = 16384
BUFFER_CELLS = 1 << 23
SQUARE_BLOCK = 4096
# Candidates per group when a block's top-k is selected (see `_block_top_k`).
SELECTION_GROUP = 64
Neighbours = tuple[np.ndarray, np.ndarray]


def knn(queries: Array, keys: Array, k: int, *, chunk_size: int | None = None, backend: str = "auto") -> Neighbours:
    """For each query the k keys with the largest dot product, best first.

    With L2-normalised rows the dot product is the cosine. Returns float32 scores and int64 key indices,
    both [n_queries, k]. `backend="faiss"` uses `faiss.IndexFlatIP`, "torch" stilts' blocked search
    (blocks of at most chunk_size x chunk_size if given), "auto" faiss when it is importable. A torch tensor on a GPU is
    searched there by the blocked search.
    """
    resolved = _resolve_backend(backend)
    query_rows, key_rows, k, chunk_size = _checked(queries, keys, k, chunk_size)
    if resolved == "faiss":
        return _knn_faiss(query_rows, key_rows, k)
    forward, _ = _blocked_search(query_rows, key_rows, k, 0, chunk_size)
    return forward


def knn_both_ways(
    queries: Array, keys: Array, k: int, k_back: int | None = None, *, chunk_size: int | None = None,
    backend: str = "auto",
) -> tuple[Neighbours, Neighbours]:
    """`knn(queries, keys, k)` and `knn(keys, queries, k_back)` (k_back defaults to k), as BUCC mining
    needs them. The blocked search takes both from one pass over the similarity matrix, so "auto"
    takes it (0.6x the time of two faiss searches, benchmarks/retrieval_search.py); `backend="faiss"`
    searches twice, as XTREME does."""
    resolved = "torch" if backend == "auto" else _resolve_backend(backend)
    k_back = k if k_back is None else k_back
    query_rows, key_rows, k, chunk_size = _checked(queries, keys, k, chunk_size)
    key_rows, query_rows, k_back, _ = _checked(key_rows, query_rows, k_back, chunk_size)
    if resolved == "faiss":
        return _knn_faiss(query_rows, key_rows, k), _knn_faiss(key_rows, query_rows, k_back)
    return _blocked_search(query_rows, key_rows, k, k_back, chunk_size)


def _resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    try:
        import faiss  # noqa: F401
    except ImportError as exc:
        if backend == "faiss":
            raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu)") from exc
        return "torch"
    return "faiss"


def _checked(queries: Array, keys: Array, k: int, chunk_size: int | None) -> tuple[Array, Array, int, int | None]:
    k = positive_int(k, "k")
    chunk_size = None if chunk_size is None else positive_int(chunk_size, "chunk_size")
    query_rows, key_rows = as_matrix(queries, "queries"), as_matrix(keys, "keys")
    if query_rows.shape[1] != key_rows.shape[1]:
        raise ValueError(f"queries have dimension {query_rows.shape[1]} but keys have dimension {key_rows.shape[1]}")
    if k > key_rows.shape[0]:
        raise ValueError(f"cannot return {k} neighbours from {key_rows.shape[0]} keys")
    return query_rows, key_rows, k, chunk_size


def positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _is_tensor(value: object) -> bool:
    """A torch tensor? (Without torch imported, nothing is one.)"""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_matrix(array: Array, name: str) -> Array:
    """A float32 [n, dim] matrix sharing memory with the input where it can: a torch tensor on a GPU
    stays one, anything else becomes a numpy array. NaN or inf is refused, since it would silently
    reorder every neighbour list it touches (checked a block at a time, so no input-sized mask)."""
    if _is_tensor(array):
        import torch

        tensor = array.detach().to(torch.float32)
        matrix = tensor if tensor.device.type != "cpu" else tensor.numpy()
    else:
        matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n, dim] array, got shape {tuple(matrix.shape)}")
    for start in range(0, matrix.shape[0], KEY_BLOCK):
        block = matrix[start : start + KEY_BLOCK]
        finite = bool(block.isfinite().all()) if _is_tensor(block) else bool(np.isfinite(block).all())
        if not finite:
            raise ValueError(f"{name} contains NaN or infinite values")
    return matrix


def _knn_faiss(queries: Array, keys: Array, k: int) -> Neighbours:
    import faiss

    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(np.ascontiguousarray(to_numpy(keys)))
    scores, indices = index.search(np.ascontiguousarray(to_numpy(queries)), k)
    return scores.astype(np.float32, copy=False), indices.astype(np.int64, copy=False)


def to_numpy(array: Array) -> np.ndarray:
    """A numpy view of an array or (detached, copied from a GPU) tensor."""
    return array.detach().cpu().numpy() if _is_tensor(array) else np.asarray(array)


class _RunningTopK:
    """The k best (score, index) of each of n rows seen so far. Candidates arrive in increasing index
    order and a stable sort puts the running best first, so among equal scores earlier blocks win."""

    def __init__(self, rows: int, k: int, device: torch.device) -> None:
        import torch

        self.k = k
        self.scores = torch.full((rows, k), -torch.inf, device=device)
        self.indices = torch.full((rows, k), -1, dtype=torch.int64, device=device)

    def merge(self, rows: slice, top_scores: torch.Tensor, top_indices: torch.Tensor) -> None:
        """Offer a block's best [rows, <= k] candidates (indices already global)."""
        import torch

        scores = torch.cat([self.scores[rows], top_scores], dim=1)
        indices = torch.cat([self.indices[rows], top_indices], dim=1)
        order = scores.argsort(dim=1, descending=True, stable=True)[:, : self.k]
        self.scores[rows] = scores.gather(1, order)
        self.indices[rows] = indices.gather(1, order)

    def result(self) -> Neighbours:
        return self.scores.cpu().numpy(), self.indices.cpu().numpy()


def _block_top_k(similarities: torch.Tensor, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries along `dim` of a [rows, columns] block and their positions, as
    `similarities.topk(k, dim)` gives them, at a fraction of its cost.

    The candidates are cut into groups of SELECTION_GROUP; each group's maximum is one vectorised
    pass. The k best entries lie in the k groups with the largest maxima (a group holding one of them
    has a maximum at least as large as it, and at most k groups can), so only those k groups (plus a
    ragged tail) go through the exact selection.
    """
    import torch

    size = similarities.shape[dim]
    groups = size // SELECTION_GROUP
    if groups <= k:
        return similarities.topk(min(k, size), dim=dim)
    grouped_size = groups * SELECTION_GROUP
    grouped = similarities.narrow(dim, 0, grouped_size).unflatten(dim, (groups, SELECTION_GROUP))
    best_groups = grouped.amax(dim=dim + 1).topk(k, dim=dim).indices
    member_shape = [SELECTION_GROUP if axis == dim + 1 else 1 for axis in range(3)]
    members = torch.arange(SELECTION_GROUP, device=similarities.device).view(member_shape)
    candidates = (best_groups.unsqueeze(dim + 1) * SELECTION_GROUP + members).flatten(dim, dim + 1)
    if grouped_size < size:
        tail_shape = [-1 if axis == dim else 1 for axis in range(2)]
        tail = torch.arange(grouped_size, size, device=similarities.device).view(tail_shape)
        candidates = torch.cat([candidates, tail.expand_as(similarities.narrow(dim, grouped_size, size - grouped_size))], dim=dim)
    top_scores, positions = similarities.gather(dim, candidates).topk(k, dim=dim)
    return top_scores, candidates.gather(dim, positions)


def _blocked_search(
    queries: Array, keys: Array, k: int, k_back: int, chunk_size: int | None
) -> tuple[Neighbours, Neighbours | None]:
    """Offer each block of the similarity matrix to the queries' running top-k and (when k_back > 0)
    to the keys' running top-k."""
    import torch

    on_gpu = _is_tensor(queries) or _is_tensor(keys)
    device = (queries if _is_tensor(queries) else keys).device if on_gpu else torch.device("cpu")
    forward = _RunningTopK(queries.shape[0], k, device)
    backward = _RunningTopK(keys.shape[0], k_back, device) if k_back else None
    with torch.no_grad(), _selection_threads(on_gpu):
        for query_block, key_block, similarities in _similarity_blocks(queries, keys, chunk_size, bool(k_back), device):
            top_scores, top_keys = _block_top_k(similarities, k, dim=1)
            forward.merge(query_block, top_scores, top_keys + key_block.start)
            if backward is not None:
                top_scores, top_queries = _block_top_k(similarities, k_back, dim=0)
                backward.merge(key_block, top_scores.T, top_queries.T + query_block.start)
    return forward.result(), backward.result() if backward is not None else None


def _similarity_blocks(
    queries: Array, keys: Array, chunk_size: int | None, both_ways: bool, device: torch.device
) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """(query rows, key rows, their dot products) block by block, each product written into the same
    buffer: by torch on a GPU, by numpy's BLAS on CPU (faster than torch's MKL on AMD processors, and
    the one faiss uses)."""
    import torch

    on_gpu = device.type != "cpu"
    if on_gpu:
        queries, keys = (torch.as_tensor(side, device=device) for side in (queries, keys))
    query_step, key_step = _block_shape(queries.shape[0], keys.shape[0], chunk_size, both_ways)
    cells = query_step * key_step
    buffer = torch.empty(cells, device=device) if on_gpu else np.empty(cells, dtype=np.float32)
    for query_start in range(0, queries.shape[0], query_step):
        query_block = slice(query_start, min(query_start + query_step, queries.shape[0]))
        for key_start in range(0, keys.shape[0], key_step):
            key_block = slice(key_start, min(key_start + key_step, keys.shape[0]))
            query_rows, key_rows = queries[query_block], keys[key_block]
            out = buffer[: len(query_rows) * len(key_rows)].reshape(len(query_rows), len(key_rows))
            if on_gpu:
                yield query_block, key_block, torch.mm(query_rows, key_rows.T, out=out)
            else:
                yield query_block, key_block, torch.from_numpy(np.matmul(query_rows, key_rows.T, out=out))


@contextmanager
def _selection_threads(on_gpu: bool) -> Iterator[None]:
    """On CPU, select with one torch thread: numpy's BLAS threads keep spinning for a while after each
    product, and torch's own pool would fight them for the cores (15% slower on 2 cores)."""
    import torch

    threads = torch.get_num_threads()
    if not on_gpu:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _block_shape(n_queries: int, n_keys: int, chunk_size: int | None, both_ways: bool) -> tuple[int, int]:
    """(query rows, key rows) of a block: at most chunk_size (else SQUARE_BLOCK, searching both ways)
    on each side, else up to KEY_BLOCK keys wide with as many query rows as fit BUFFER_CELLS."""
    if chunk_size is not None or both_ways:
        side = chunk_size or SQUARE_BLOCK
        return _even_step(n_queries, side), _even_step(n_keys, side)
    key_step = _even_step(n_keys, KEY_BLOCK)
    return _even_step(n_queries, max(1, BUFFER_CELLS // key_step)), key_step


def _even_step(rows: int, most: int) -> int:
    """The block height that cuts `rows` into equal blocks of at most `most` rows: BLAS is slower on a
    thin ragged last block than on one more full one."""
    blocks = -(-rows // most)
    return max(1, -(-rows // blocks))
