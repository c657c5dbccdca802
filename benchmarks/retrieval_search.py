"""Exact nearest-neighbour search at BUCC scale: stilts' blocked search vs faiss `IndexFlatIP`.

Run by hand (not a test; timings on a shared machine are noisy, so read the ratios):

    python benchmarks/retrieval_search.py                          # 10k and 30k sentences a side, 1024 dims
    python benchmarks/retrieval_search.py --sizes 100000 --modes mining
    python benchmarks/retrieval_search.py --sizes 2000 --repeats 3 --dim 64    # a quick check

Two operations on random L2-normalised embeddings, k=4 neighbours:
- mining: what BUCC mining needs, the neighbours of each source among the targets and of each target
  among the sources (`knn_both_ways`; faiss searches twice, as XTREME does);
- search: one direction (`knn`), as Tatoeba, LAReQA and Mewsli-X use it.

Every measurement runs in a fresh process, the variants interleaved, `--repeats` times; the table
gives medians with min-max. Peak memory is the process's peak RSS above its RSS once torch, faiss and the
embeddings are loaded (the peak is reset there; Linux only), so it is the search's own working memory. The last
column checks that both backends found the same nearest neighbours.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import numpy as np

from common import spread

MODES = ("mining", "search")
BACKENDS = ("torch", "faiss")


def _embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # in place: no freed copy raises the baseline
    return vectors


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux clear_refs "5") and return that, in KiB,
    so the peak measured afterwards is the search's alone, not an earlier high-water mark."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_kib("VmRSS")


def _search(n: int, dim: int, mode: str, backend: str, queue: mp.Queue) -> None:
    import faiss  # noqa: F401  (both libraries load before the baseline, in every process)
    import torch  # noqa: F401

    from stilts.eval.search import knn, knn_both_ways

    source, target = _embeddings(n, dim, 1), _embeddings(n, dim, 2)
    baseline = _reset_peak_rss()
    start = time.perf_counter()
    if mode == "mining":
        (_, forward), _ = knn_both_ways(source, target, 4, backend=backend)
    else:
        _, forward = knn(source, target, 4, backend=backend)
    seconds = time.perf_counter() - start
    peak_mib = (_status_kib("VmHWM") - baseline) / 1024
    queue.put((seconds, peak_mib, forward[:, 0].tolist()))


def measure(n: int, dim: int, mode: str, backend: str) -> tuple[float, float, list[int]]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_search, args=(n, dim, mode, backend, queue))
    process.start()
    result = queue.get()
    process.join()
    return result




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    try:
        import faiss  # noqa: F401
    except ImportError:
        raise SystemExit("faiss-cpu is not installed: pip install faiss-cpu (the comparison needs it)")
    header = (f"{'sentences':>9} {'mode':>6} {'stilts s':>19} {'faiss s':>19} {'time x':>6} "
              f"{'stilts MiB':>15} {'faiss MiB':>15} {'memory x':>8} {'same nn':>7}")
    print(header, flush=True)
    worst_time = worst_memory = 0.0
    for n in args.sizes:
        for mode in args.modes:
            runs: dict[str, list[tuple[float, float, list[int]]]] = {backend: [] for backend in BACKENDS}
            for _ in range(args.repeats):
                for backend in BACKENDS:
                    runs[backend].append(measure(n, args.dim, mode, backend))
            seconds = {backend: [run[0] for run in runs[backend]] for backend in BACKENDS}
            memory = {backend: [run[1] for run in runs[backend]] for backend in BACKENDS}
            time_ratio = statistics.median(seconds["torch"]) / statistics.median(seconds["faiss"])
            memory_ratio = statistics.median(memory["torch"]) / max(statistics.median(memory["faiss"]), 1.0)
            same = np.mean(np.array(runs["torch"][0][2]) == np.array(runs["faiss"][0][2]))
            worst_time, worst_memory = max(worst_time, time_ratio), max(worst_memory, memory_ratio)
            print(f"{n:>9} {mode:>6} {spread(seconds['torch'], 2):>19} {spread(seconds['faiss'], 2):>19} "
                  f"{time_ratio:>6.2f} {spread(memory['torch'], 0):>15} {spread(memory['faiss'], 0):>15} "
                  f"{memory_ratio:>8.2f} {same:>7.1%}", flush=True)
    print(f"worst ratio to faiss: time {worst_time:.2f}x, memory {worst_memory:.2f}x "
          f"(goal: time <= 1.0x, memory <= 1.5x)")


if __name__ == "__main__":
    main()
