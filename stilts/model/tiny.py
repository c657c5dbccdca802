"""A tiny XLM-R built locally: the same architecture and tokenizer type, trained on shipped text.
The same tokenizer under a BERT or DeBERTa-v2 encoder gives a tiny model of each other encoder
family stilts runs (multilingual-e5-small is a BERT with an XLM-R tokenizer; mDeBERTa-v3 a DeBERTa-v2).

It lets the whole pipeline run offline and fast (tests, the quickstart). Built once per
(corpus, settings) and cached; the build is deterministic and published by an atomic rename so
concurrent jobs (DDP ranks, sweep jobs) never see half a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from stilts.errors import StiltsError
from stilts.store.files import apply_umask_modes

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids 0..3 (+ mask, the last id)
# Part of the build folder's name: bump it when the recipe changes what a build contains, so
# builds cached by an older recipe are not reused.
RECIPE = "sentencepiece-unigram-2-mlm"  # 2: saved with its LM head (XLMRobertaForMaskedLM)


# Each family's config and masked-LM classes (transformers), and its config beyond the shared sizes.
FAMILIES = {
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForMaskedLM", {}),
    "bert": ("BertConfig", "BertForMaskedLM", {"type_vocab_size": 2}),
    # mDeBERTa-v3's attention: relative positions (disentangled c2p and p2c), shared keys, no absolute positions.
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForMaskedLM", {
        "relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
        "position_buckets": 256, "max_relative_positions": -1, "norm_rel_ebd": "layer_norm", "share_att_key": True,
        "type_vocab_size": 0}),
}
FOLDER_NAMES = {"xlm-roberta": "xlmr", "bert": "bert", "deberta-v2": "debertav2"}


@dataclass(frozen=True)
class TinySettings:
    family: str = "xlm-roberta"  # one of FAMILIES
    vocab_size: int = 4000
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 514
    seed: int = 0


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def corpus_texts(root: Path) -> Iterator[str]:
    """Every piece of text in the files under root: JSON strings, tsv fields, CoNLL-U forms."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".json", ".jsonl", ".tsv", ".conllu"}):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            yield from _strings(json.loads(text))
        elif path.suffix == ".jsonl":
            for line in text.splitlines():
                if line.strip():
                    yield from _strings(json.loads(line))
        elif path.suffix == ".conllu":
            yield from (line.split("\t")[1] for line in text.splitlines() if line and not line.startswith("#"))
        else:
            yield from (field for line in text.splitlines() for field in line.split("\t"))


def _fingerprint(corpus_root: Path, settings: TinySettings) -> str:
    described = asdict(settings)
    if settings.family == "xlm-roberta":  # as before families existed: its cached builds stay valid
        del described["family"]
    digest = hashlib.sha256(json.dumps({"recipe": RECIPE, **described}, sort_keys=True).encode())
    for text in corpus_texts(corpus_root):
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def _pre_tokenizer():
    from tokenizers import pre_tokenizers

    # Split punctuation off words like XLM-R's vocabulary effectively does, so QA answer
    # boundaries fall on token boundaries.
    return pre_tokenizers.Sequence([pre_tokenizers.Punctuation(), pre_tokenizers.Metaspace()])


def _sentencepiece_vocab(texts: Iterator[str], size: int) -> list[tuple[str, float]]:
    """(piece, score) of a Unigram vocabulary learned by sentencepiece (XLM-R's own tokenizer trainer).

    Unlike the `tokenizers` UnigramTrainer (whose scores and tie order vary between processes),
    sentencepiece with one thread learns the same vocabulary, bit for bit, every time. Its only
    special piece is <unk> (id 0, dropped here); XLM-R's specials are placed by the caller."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=texts, model_writer=model, vocab_size=size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
        # The texts come normalized and pre-split; keep them as they are.
        normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=True,
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())
            if not (processor.is_unknown(i) or processor.is_control(i))]


def _train_tokenizer(corpus_root: Path, settings: TinySettings):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import XLMRobertaTokenizerFast

    normalizer, pre_tokenizer = normalizers.NFKC(), _pre_tokenizer()

    def pre_split(text: str) -> str:
        # Sentencepiece sees the words the tokenizer will see: each pre-token (▁-prefixed, as
        # Metaspace makes every one) becomes a space-separated word, so no piece spans two.
        pieces = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        return " ".join(piece.removeprefix("\u2581") for piece, _ in pieces)

    # vocab_size counts everything: sentencepiece's <unk> is replaced by XLM-R's 4 + <mask>.
    size = settings.vocab_size - len(SPECIAL_TOKENS) + 1
    learned = _sentencepiece_vocab(map(pre_split, corpus_texts(corpus_root)), size)
    # XLM-R's layout: <s> <pad> </s> <unk>, the learned pieces, <mask> last.
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS[:-1]] + learned + [(SPECIAL_TOKENS[-1], 0.0)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=SPECIAL_TOKENS.index("<unk>"), byte_fallback=False))
    tokenizer.add_special_tokens([AddedToken(token, normalized=False, special=True) for token in SPECIAL_TOKENS])
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=settings.max_position_embeddings - 2,
    )


def build_tiny_xlmr(corpus_root: Path, cache_dir: Path, settings: TinySettings = TinySettings()) -> Path:
    """Path of a saved tiny model (model + tokenizer) of the settings' family, building it on first
    use. A cached build is found without importing torch or transformers (every job and DDP rank resolves it)."""
    if settings.family not in FAMILIES:
        raise StiltsError(f"model.tiny.family must be one of {', '.join(FAMILIES)}, not {settings.family!r}")
    target = Path(cache_dir).expanduser() / f"tiny-{FOLDER_NAMES[settings.family]}-{_fingerprint(corpus_root, settings)}"
    if (target / "config.json").exists():
        log.info("Using the cached tiny XLM-R at %s", target)
        return target
    import torch
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the build's shard-writing bar is noise
    log.info("Building a tiny %s model (tokenizer trained on %s) into %s", settings.family, corpus_root, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-build-", dir=target.parent))
    try:
        tokenizer = _train_tokenizer(corpus_root, settings)
        torch.manual_seed(settings.seed)
        config_class, model_class, family_settings = FAMILIES[settings.family]
        config = getattr(transformers, config_class)(
            vocab_size=len(tokenizer), hidden_size=settings.hidden_size, num_hidden_layers=settings.num_hidden_layers,
            num_attention_heads=settings.num_attention_heads, intermediate_size=settings.intermediate_size,
            max_position_embeddings=settings.max_position_embeddings, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            **family_settings,
        )
        # With its LM head, as the Hub's checkpoints: AutoModel loads the encoder, MLM stages the head.
        getattr(transformers, model_class)(config).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        apply_umask_modes(staging)  # a shared cache stays readable by the lab once it takes its name
        try:
            os.rename(staging, target)
        except OSError:  # another process published the same build first
            log.info("Another process built %s first; using it", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
