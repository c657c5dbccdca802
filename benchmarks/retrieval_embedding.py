"""Retrieval embedding: stilts' embedder (layers above the chosen one dropped, one tokenisation) vs the
whole encoder run for every sentence and one hidden state kept (what stilts did before, tokenising twice).

Run by hand (not a test; timings on a shared machine are noisy, so read the ratios):

    python benchmarks/retrieval_embedding.py                  # layer 2 of 4, and 14 of 24 (XLM-R large's default)
    python benchmarks/retrieval_embedding.py --sentences 2000 --repeats 5

Models are XLM-R-architecture encoders with random weights (no download), hidden size 256, and the
tiny model's tokenizer; sentences are Tatoeba's (../shared/data when present, else the shipped
samples). Variants are interleaved, each measured `--repeats` times; the table shows medians with
min-max, the ratio full / stilts, and whether the vectors are bit-identical.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stilts.model.embeddings import EmbeddingSettings, SentenceEmbedder
from stilts.model.encoder import load_tokenizer
from stilts.model.tiny import build_tiny_xlmr
from stilts.tasks.common.sources import SAMPLES_ROOT

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tatoeba"


def _sentences(count: int) -> list[str]:
    files = sorted(SHARED.rglob("tatoeba.*-eng.*")) if SHARED.exists() else sorted((SAMPLES_ROOT / "tatoeba").rglob("*.*"))
    lines = [line.strip() for path in files for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (lines * (count // max(len(lines), 1) + 1))[:count]


def _encoder(layers: int):
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=4000, hidden_size=256, num_hidden_layers=layers, num_attention_heads=4,
                              intermediate_size=1024, max_position_embeddings=514, pad_token_id=1)
    return XLMRobertaModel(config, add_pooling_layer=False).eval()


@torch.no_grad()
def _whole_encoder(encoder, tokenizer, texts: list[str], layer: int, batch_size: int, max_length: int) -> np.ndarray:
    """The former path: lengths from one tokenisation, each batch tokenised again, every layer run."""
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    output = np.empty((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        hidden = encoder(**batch, output_hidden_states=True).hidden_states[layer].float()
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        output[rows] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return output


def _timed(function) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = function()
    return time.perf_counter() - start, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as cache:
        tokenizer = load_tokenizer(str(build_tiny_xlmr(SAMPLES_ROOT, Path(cache))))
    texts = _sentences(args.sentences)
    rows, ratios, same = [], [], []
    for layer, layers in ((2, 4), (14, 24)):
        settings = EmbeddingSettings(layer=layer, batch_size=args.batch_size, max_length=args.max_length)
        full_model = _encoder(layers)
        times: dict[str, list[float]] = {"whole encoder": [], "stilts": []}
        identical = True
        for _ in range(args.repeats):  # interleaved: whole, stilts, whole, stilts, ...
            seconds, reference = _timed(lambda: _whole_encoder(full_model, tokenizer, texts, layer,
                                                               args.batch_size, args.max_length))
            times["whole encoder"].append(seconds)
            embedder = SentenceEmbedder(_encoder(layers), tokenizer, settings, device="cpu")
            seconds, vectors = _timed(lambda: embedder(texts))
            times["stilts"].append(seconds)
            identical &= bool(np.array_equal(vectors, reference))
        whole, ours = statistics.median(times["whole encoder"]), statistics.median(times["stilts"])
        ratios.append(whole / ours)
        same.append(identical)
        for name, values in times.items():
            rows.append((f"layer {layer} of {layers}", name, statistics.median(values), min(values), max(values)))
        rows.append((f"layer {layer} of {layers}", "ratio whole / stilts", whole / ours, None, None))
        rows.append((f"layer {layer} of {layers}", "vectors bit-identical", float(identical), None, None))
    print(f"{len(texts)} sentences, batch {args.batch_size}, {args.repeats} repetitions (median [min-max] seconds)")
    for setting, name, median, low, high in rows:
        spread = f"  [{low:.3f}-{high:.3f}]" if low is not None else ""
        print(f"{setting:<16} {name:<24} {median:8.3f}{spread}")
    print(f"summary: whole-encoder embedding costs {ratios[0]:.2f}x stilts' at layer 2 of 4 and "
          f"{ratios[1]:.2f}x at layer 14 of 24; vectors {'bit-identical' if all(same) else 'DIFFER'}")


if __name__ == "__main__":
    main()
