"""Where a task's examples come from: files under a data root (samples or a local download) or the Hub."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from stilts.errors import StiltsError
from stilts.tasks.spec import Example, Reader, TaskSpec

SAMPLES_ROOT = Path(__file__).resolve().parents[1] / "samples"


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
    raise StiltsError(
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
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise StiltsError(
            f"{path}: malformed {spec.name} file ({type(error).__name__}: {error}); expected {spec.description}"
        ) from error


def read_files(spec: TaskSpec, split: str, language: str, root: Path) -> list[Example]:
    """The examples of one split and language from the files under `root`."""
    examples = [example for path in find_files(spec, split, language, root) for example in read_file(spec, path, root)]
    if not examples:
        raise StiltsError(f"{spec.name}: the {split} split for {language!r} under {root} holds no examples")
    return examples


def read_hub(spec: TaskSpec, split: str, language: str) -> list[Example]:
    """Load from the Hugging Face Hub; a failure names the dataset and how to work offline."""
    import datasets

    parts = [part for part in spec.hub if split in part.splits and (not part.languages or language in part.languages)]
    if not parts:
        raise StiltsError(f"{spec.name}: no Hugging Face Hub source for the {split} split; use data=local")
    examples = []
    for part in parts:
        name = part.name(language)
        try:
            dataset = datasets.load_dataset(part.path, name, split=part.splits[split])
        except Exception as error:  # the Hub client raises many types for one cause: not reachable
            reason = str(error).splitlines()[0].rstrip('.') if str(error) else ''
            raise StiltsError(
                f"{spec.name}: could not load {part.path}{f' ({name})' if name else ''} split "
                f"{part.splits[split]!r} from the Hugging Face Hub: {type(error).__name__}: {reason}. Offline? Use "
                "experiment=quickstart (shipped samples) or data=local data.root=DIR with downloaded files."
            ) from None
        examples += part.convert(dataset, language)
    if not examples:
        raise StiltsError(f"{spec.name}: the Hugging Face Hub gave no {split} examples for {language!r}")
    return examples


def load_examples(spec: TaskSpec, split: str, language: str, source: str, root: str | Path | None) -> list[Example]:
    """Examples of one split and language from the configured source (`files` or `hub`)."""
    if source == "hub":
        return read_hub(spec, split, language)
    if source != "files":
        raise StiltsError(f"data.source must be 'files' or 'hub', not {source!r}")
    if root is None:
        raise StiltsError("data.root is not set: give data.root=DIR (the folder holding the task folders)")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise StiltsError(f"data.root {root} is not a folder")
    return read_files(spec, split, language, root)


def check_languages(spec: TaskSpec, languages: Sequence[str]) -> list[str]:
    unknown = [language for language in languages if language not in spec.all_languages]
    if unknown:
        raise StiltsError(
            f"{spec.name}: unknown language(s) {unknown} in target.languages; valid: {', '.join(spec.all_languages)}"
        )
    return list(languages)
