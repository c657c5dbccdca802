"""Where a task's examples come from: files under a data root (samples or a local download) or the Hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stilts.errors import DataMalformed, DataMissing, HubUnreachable, StiltsError
from stilts.tasks.common.hub_schema import check_hub_features, published_rows
from stilts.tasks.spec import Example, HubSource, Reader, TaskSpec

SAMPLES_ROOT = Path(__file__).resolve().parents[2] / "samples"


def _english_only(spec: TaskSpec, split: str, language: str, bundle: tuple[str, ...]) -> bool:
    """A training or dev file without a language in its name (squad/train-v1.1.json) is the
    training language's: it never stands in for another language's data."""
    trainable = spec.retrieve is None and split in ("train", "dev")
    named = any("{lang}" in part or "{code}" in part for part in bundle)
    return trainable and not named and language != spec.train_language


def find_files(spec: TaskSpec, split: str, language: str, root: Path) -> list[Path]:
    """The files of one split and language: the first path template that matches anything wins."""
    if split not in spec.files:
        raise StiltsError(f"task {spec.name!r} has no {split!r} split; it has {sorted(spec.files)}")
    tried = []
    for template in spec.files[split]:
        bundle = (template,) if isinstance(template, str) else template
        if _english_only(spec, split, language, bundle):
            continue
        code = (spec.file_languages or {}).get(language, language)
        patterns = [part.format(lang=language, code=code, split=split) for part in bundle]
        matches = [sorted(root.glob(pattern)) for pattern in patterns]
        if all(matches):
            return [path for paths in matches for path in paths]
        tried.append(" + ".join(str(root / pattern) for pattern in patterns))
    hint = f" {spec.download_hint}" if spec.download_hint else ""
    raise DataMissing(
        f"{spec.name}: no {split} data for language {language!r}: looked for "
        f"{' or '.join(tried) or f'a file with {language!r} in its name (the task has {spec.train_language} data only)'}.{hint}"
        " Run offline with experiment=quickstart (shipped samples), or point data.root at your download."
    )


def reader_for(spec: TaskSpec, path: Path, root: Path | None = None) -> Reader:
    """The reader of a file: the first of the task's `file_readers` whose pattern matches the
    file's path under the data root, else the task's own reader."""
    relative = PurePosixPath(path.relative_to(root).as_posix() if root is not None else path.as_posix())
    return next((reader for pattern, reader in spec.file_readers if relative.match(pattern)), spec.reader)


def read_file(spec: TaskSpec, path: Path, root: Path | None = None) -> list[Example]:
    """The task's reader on one file; a structural error the reader did not foresee names the file."""
    try:
        return reader_for(spec, path, root)(path)
    except DataMalformed:
        raise
    except StiltsError as error:  # the readers name the file and line
        raise DataMalformed(str(error)) from None
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise DataMalformed(
            f"{path}: malformed {spec.name} file ({type(error).__name__}: {error}); expected {spec.description}"
        ) from error


def read_files(spec: TaskSpec, split: str, language: str, root: Path) -> list[Example]:
    """The examples of one split and language from the files under `root`."""
    return load_split(spec, split, language, "files", root).examples


@dataclass(frozen=True)
class Loaded:
    """One split and language of a task as read: its examples, where they came from (files under the
    data root, or Hub datasets) and the bytes behind them (files, or the datasets' cache files)."""

    examples: list[Example]
    origin: str
    size: int
    notes: tuple[str, ...] = ()  # e.g. a Hub split whose row count differs from the published one


def hub_parts(spec: TaskSpec, split: str, language: str) -> list[HubSource]:
    return [part for part in spec.hub if part.serves(split, language)]


def uses_hub(spec: TaskSpec, split: str, language: str, source: str, root: str | Path | None) -> bool:
    """Whether `data.source=hub` reads this split and language from the Hub. What the Hub does not
    serve (CCG, the retrieval targets, MLM text, XTREME-R's extra UD POS languages) is read from
    data.root when one is given beside it; without one, it is an error saying where it comes from.
    A split with a Hub source and no file layout (a declared task's `source`) is read from its source
    whatever data.source says: it has no other place."""
    if source not in ("files", "hub"):
        raise StiltsError(f"data.source must be 'files' or 'hub', not {source!r}")
    if hub_parts(spec, split, language):
        return source == "hub" or split not in spec.files
    if source == "files":
        return False
    if root is not None:
        return False
    gap = spec.hub_gap or (f"{spec.name} has no Hugging Face Hub source" if not spec.hub
                           else f"{spec.name} has no Hugging Face Hub source for {split}/{language}")
    raise DataMissing(f"{gap}. Use data=local data.root=DIR, or give data.root=DIR beside data=hub for what the "
                      f"Hub does not serve (stilts reads {spec.name} {split}/{language} from "
                      f"{' or '.join(_templates(spec, split, language))}).")


def _templates(spec: TaskSpec, split: str, language: str) -> list[str]:
    code = (spec.file_languages or {}).get(language, language)
    return [" + ".join(part.format(lang=language, code=code, split=split)
                       for part in ((template,) if isinstance(template, str) else template))
            for template in spec.files.get(split, ())]


def describe_source(spec: TaskSpec, split: str, language: str, source: str, root: str | Path | None) -> str:
    """Where a split and language are read from, before reading it: Hub datasets or file templates."""
    try:
        if uses_hub(spec, split, language, source, root):
            return " + ".join(part.describe(split, language) for part in hub_parts(spec, split, language))
    except StiltsError:
        pass
    return " or ".join(_templates(spec, split, language))


def load_hub_dataset(part: HubSource, split: str, language: str):
    """One Hub dataset split, downloaded into (or read from) the `datasets` cache that every run and
    `stilts.prepare` share; a failure is one line naming the dataset and how to work offline."""
    import datasets

    name = part.name(language)
    try:
        dataset = datasets.load_dataset(part.path, name, split=part.splits[split], revision=part.revision)
    except Exception as error:  # the Hub client raises many types for one cause: not reachable
        reason = str(error).splitlines()[0].rstrip(".") if str(error) else ""
        raise HubUnreachable(
            f"could not load {part.describe(split, language)} from the Hugging Face Hub: {type(error).__name__}: "
            f"{reason}. Offline? Run python -m stilts.prepare with the same arguments where the Hub is reachable "
            "(it fills the cache the runs read), or use experiment=quickstart (shipped samples) or data=local "
            "data.root=DIR with downloaded files."
        ) from None
    check_hub_features(part, language, dataset.features)
    return dataset


def _cache_bytes(dataset) -> int:
    return sum(Path(entry["filename"]).stat().st_size for entry in dataset.cache_files
               if Path(entry["filename"]).exists())


def _convert(spec: TaskSpec, part: HubSource, split: str, language: str, dataset) -> list[Example]:
    try:
        return part.convert(dataset, language)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:
        raise DataMalformed(f"{part.describe(split, language)}: rows do not have the {spec.name} schema stilts "
                          f"reads ({type(error).__name__}: {error}); see stilts/tasks/common/hub_schema.json") from None


def _load_hub(spec: TaskSpec, split: str, language: str) -> Loaded:
    examples, origins, size, notes = [], [], 0, []
    for part in hub_parts(spec, split, language):
        dataset = load_hub_dataset(part, split, language)
        examples += _convert(spec, part, split, language, dataset)
        origins.append(part.describe(split, language))
        size += _cache_bytes(dataset)
        published = published_rows(part.path, part.name(language), part.splits[split])
        if published is not None and len(dataset) != published:
            notes.append(f"{part.describe(split, language)}: {len(dataset)} rows, {published} published")
    return Loaded(examples, " + ".join(origins), size, tuple(notes))


def _load_files(spec: TaskSpec, split: str, language: str, root: str | Path | None) -> Loaded:
    if root is None:
        raise StiltsError("data.root is not set: give data.root=DIR (the folder holding the task folders)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise StiltsError(f"data.root {root} is not a folder")
    paths = find_files(spec, split, language, root)
    examples = [example for path in paths for example in read_file(spec, path, root)]
    origin = ", ".join(str(path) for path in paths)
    return Loaded(examples, origin, sum(path.stat().st_size for path in paths))


def load_split(spec: TaskSpec, split: str, language: str, source: str, root: str | Path | None) -> Loaded:
    """One split and language from the configured source (`files`, or `hub` with data.root for what
    the Hub does not serve): what every run reads and what `stilts.prepare` checks."""
    if uses_hub(spec, split, language, source, root):
        loaded = _load_hub(spec, split, language)
    else:
        loaded = _load_files(spec, split, language, root)
    if not loaded.examples:
        raise DataMalformed(f"{spec.name}: the {split} split for {language!r} ({loaded.origin}) holds no examples")
    return loaded


def load_examples(spec: TaskSpec, split: str, language: str, source: str, root: str | Path | None) -> list[Example]:
    """Examples of one split and language from the configured source."""
    return load_split(spec, split, language, source, root).examples
