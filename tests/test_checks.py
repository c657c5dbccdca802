"""Every unchecked setting of the issue ends in one error naming its key: in-process for each
value, through the real CLI for the ones Hydra or the file system see first."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stilts.checks import check_config
from stilts.errors import StiltsError
from stilts.settings import Dtype, explain
from stilts.tasks.common.sources import SAMPLES_ROOT
from tests.cli import stilts
from tests.test_configs import compose_config

BAD = [
    ("train.micro_batch_size=0", "train.micro_batch_size must be a positive whole number"),
    ("train.micro_batch_size=-1", "train.micro_batch_size must be a positive whole number"),
    ("train.lr=-1", "train.lr must be a positive number"),
    ("train.lr=abc", "train.lr must be a positive number"),
    ("seed=abc", "seed must be a whole number"),
    ("train.max_epochs=0", "train.max_epochs must be a positive whole number or null"),
    ("train.effective_batch_size=0", "train.effective_batch_size must be a positive whole number or null"),
    ("train.warmup_ratio=1.5", "train.warmup_ratio must be a number in [0, 1)"),
    ("target.languages=[]", "target.languages is empty"),
    ("target.languages=de", "target.languages must be a list of language codes, e.g. target.languages=[de,sw], not 'de'"),
    ("target.languages=[de,xx]", "target.languages: xnli has no language(s) ['xx']; valid: "),
    ("overwrite=maybe", "overwrite must be true or false, not 'maybe'"),
    ("keep_checkpoints=2.5", "keep_checkpoints must be true or false"),
    ("train.micro_batch_size=1.5", "train.micro_batch_size must be a positive whole number, not 1.5"),
    ("train=3", "train must be a group of settings"),
    ("target=nope", "Could not find 'target/nope' Available options in 'target': bucc, lareqa,"),
    ("target.epochs=0", "target.epochs must be a positive whole number"),
    ("target.eval_split=valid", "target.eval_split must be one of"),
    ("+intermediate.squad.epochs=-2", "intermediate.squad.epochs must be a positive whole number"),
    ("+intermediat=squad", "unknown setting 'intermediat'; did you mean 'intermediate'?"),
    ("+train.lrr=1e-4", "unknown setting train.'lrr'; did you mean train.'lr'?"),
]


def first_error(*overrides: str) -> str:
    """What `stilts.train OVERRIDES` says first: the schema's verdict while composing, else check_config's."""
    try:
        cfg = compose_config(*overrides)
    except (HydraException, OmegaConfBaseException) as error:
        return explain(error)
    with pytest.raises(StiltsError) as error:
        check_config(cfg)
    return str(error.value)


@pytest.mark.parametrize("override,message", BAD)
def test_each_bad_setting_names_its_key(override, message) -> None:
    assert message in first_error("target=xnli", "experiment=quickstart", override)


@pytest.mark.parametrize("override,value", [("keep_checkpoints=1", True), ("overwrite=no", False), ("train.lr=1", 1.0),
                                            ("train.max_epochs=null", None), ("rank.dtype=bfloat16", "bfloat16")])
def test_the_schemas_convert_values_to_their_types(override, value) -> None:
    """Booleans, numbers and choices are typed by stilts.settings while the config is composed."""
    with initialize_config_module("stilts.conf", version_base="1.3"):
        cfg = compose("rank", overrides=["target=tydiqa", override])
    found = OmegaConf.select(cfg, override.split("=")[0])
    assert found == value and type(found) in ({type(value)} if not isinstance(value, str) else {Dtype})


def test_the_defaults_and_presets_pass() -> None:
    for overrides in ((), ("experiment=quickstart",), ("+intermediate=[mnli,squad]", "target=tydiqa"),
                      ("target=tatoeba",), ("target=xcopa",), ("target.languages=[de,sw]",)):
        check_config(compose_config(*overrides))


@pytest.mark.cli
@pytest.mark.parametrize("override,message", [
    ("+intermediat=squad", "did you mean 'intermediate'?"),
    ("seed=abc", "seed must be a whole number"),
    ("train.lr=x", "train.lr must be a positive number, not 'x'"),
    ("target.languages=de", "target.languages must be a list"),
    ("target.languages=[xx]", "target.languages: xnli has no language(s) ['xx']"),
])
def test_bad_settings_through_the_cli_make_no_folder(override, message, tmp_path, stilts_cache) -> None:
    run = stilts("target=xnli", "experiment=quickstart", override, cache=stilts_cache, cwd=tmp_path, timeout=120)
    assert run.returncode == 2
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert message in line and "Traceback" not in run.stderr
    assert not (tmp_path / "outputs").exists()


def _blocked_by_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    return blocker / "out"


def _read_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only folders")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return readonly / "out"


@pytest.mark.cli
@pytest.mark.parametrize("unwritable", [_blocked_by_a_file, _read_only])
def test_an_unwritable_output_folder_is_named(unwritable, tmp_path, stilts_cache) -> None:
    folder = unwritable(tmp_path)
    run = stilts("target=xnli", "experiment=quickstart", f"paths.output_dir={folder}", cache=stilts_cache,
                 cwd=tmp_path, timeout=120)
    assert run.returncode == 2
    assert f"cannot write to {folder}" in run.stderr and "paths.output_dir" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.cli
def test_a_malformed_squad_file_names_the_file(tmp_path, stilts_cache) -> None:
    root = tmp_path / "data"
    shutil.copytree(SAMPLES_ROOT, root)
    (root / "squad" / "train-v2.0.json").write_text('{"data": [1]}')
    run = stilts("+intermediate=squad", "target=xnli", "experiment=quickstart", "data=local", f"data.root={root}",
                 cache=stilts_cache, cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert str(root / "squad" / "train-v2.0.json") in run.stderr and "Traceback" not in run.stderr
