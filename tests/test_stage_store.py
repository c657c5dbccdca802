"""Run and stage identity, the stage store (verify, damage, locks) and the batch layout, in-process."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from stilts.store import locks, stages
from stilts.errors import StiltsError
from stilts.run.plan import plan_stages
from stilts.tasks.common.sources import SAMPLES_ROOT
from stilts.run.data import batch_layout
from tests.test_configs import compose_config

QUICK = ("+intermediate=squad", "target=tydiqa", "experiment=quickstart")


@pytest.mark.parametrize("override", ["model=xlmr_base", "model.tiny.hidden_size=96", "train.lr=1e-4",
                                      "train.max_epochs=2", "target.languages=[de]", "target.eval_split=test",
                                      "target.epochs=5", "seed=1", "trainer.precision=bf16-mixed"])
def test_settings_that_change_numbers_get_their_own_run_folder(override) -> None:
    assert compose_config(*QUICK, override).paths.run_dir != compose_config(*QUICK).paths.run_dir


@pytest.mark.parametrize("override", ["train.eval_batch_size=7", "train.micro_batch_size=4", "paths.output_dir=elsewhere",
                                      "data.cache_dir=/tmp/x", "logger=none", "trainer.devices=2",
                                      "train.checkpoint_every_n_steps=5", "overwrite=true"])
def test_settings_that_change_no_number_keep_the_run_folder_name(override) -> None:
    assert compose_config(*QUICK, override).paths.run_name == compose_config(*QUICK).paths.run_name


def test_run_folder_names_target_chain_model_and_seed() -> None:
    name = compose_config("+intermediate=[mnli,squad]", "target=tydiqa", "model=xlmr_base", "seed=3").paths.run_name
    assert name.startswith("tydiqa/mnli+squad/xlm-roberta-base/seed3-")


def test_stage_key_follows_content_not_locations(tmp_path, tiny_model_dir) -> None:
    data = tmp_path / "data"
    shutil.copytree(SAMPLES_ROOT, data)
    moved_model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, moved_model)
    base = [s.key for s in plan_stages(compose_config(*QUICK), str(tiny_model_dir))]
    # Another data root with the same files, another model folder with the same files, another
    # stages folder, another evaluation batch size: the same stages.
    same = plan_stages(compose_config(*QUICK, "data=local", f"data.root={data}", f"paths.output_dir={tmp_path}",
                                      "train.eval_batch_size=3"), str(moved_model))
    assert [s.key for s in same] == base
    assert same[0].directory.parent == tmp_path / "stages"
    # Precision and data content change the weights: other stages.
    assert plan_stages(compose_config(*QUICK, "trainer.precision=bf16-mixed"), str(tiny_model_dir))[0].key != base[0]
    squad = data / "squad" / "train-v2.0.json"
    squad.write_text(squad.read_text(encoding="utf-8").replace("the", "The", 1), encoding="utf-8")
    changed = plan_stages(compose_config(*QUICK, "data=local", f"data.root={data}"), str(tiny_model_dir))
    assert changed[0].key != base[0] and changed[1].key != base[1]


def test_batch_layout_keeps_the_effective_batch_on_any_device_count() -> None:
    assert batch_layout(16, 8, 8) == (2, 1)  # the README's 8 devices, QA's effective batch 16
    assert batch_layout(32, 8, 1) == (8, 4)
    assert batch_layout(32, 5, 1) == (4, 8)
    assert batch_layout(24, 8, 2) == (6, 2)
    with pytest.raises(StiltsError, match="cannot be split evenly over 3 processes"):
        batch_layout(16, 8, 3)


def _publish(directory: Path) -> dict:
    (directory / "encoder").mkdir(parents=True)
    (directory / "encoder" / "model.safetensors").write_bytes(b"weights" * 100)
    (directory / "head.safetensors").write_bytes(b"head")
    (directory / "lightning").mkdir()
    (directory / "lightning" / "last.ckpt").write_bytes(b"not vouched for")
    return stages.publish(directory, {"task": "squad"})


def test_a_published_stage_is_verified_before_reuse(tmp_path) -> None:
    directory = tmp_path / "squad-abc"
    document = _publish(directory)
    assert set(document["files"]) == {"encoder/model.safetensors", "head.safetensors"}
    assert stages.finished(directory)["task"] == "squad"
    (directory / "head.safetensors").write_bytes(b"HEAD")  # same size, other content
    assert stages.finished(directory) is None
    assert not (directory / "stage.json").exists() and list(directory.glob("stage.json.damaged-*"))


def test_a_truncated_stage_file_is_not_trusted(tmp_path) -> None:
    directory = tmp_path / "squad-abc"
    _publish(directory)
    text = (directory / "stage.json").read_text()
    (directory / "stage.json").write_text(text[: len(text) // 2])
    assert stages.finished(directory) is None


def _hold(path: str, ready) -> None:
    lock = FileLock(path)
    lock.acquire()
    ready.set()
    time.sleep(600)


def test_a_lock_held_by_a_killed_job_is_released(tmp_path) -> None:
    path = str(tmp_path / ".lock")
    ready = multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(path, ready))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(Timeout):
        FileLock(path).acquire(timeout=0.5)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    lock = FileLock(path)
    lock.acquire(timeout=5)  # the kernel dropped the dead holder's lock
    lock.release()


def test_training_lock_names_the_holder_while_held(tmp_path) -> None:
    with locks.training_lock(tmp_path, "stage 1-squad"):
        owner = json.loads((tmp_path / locks.OWNER_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["job"] == locks.job_token()
    assert not (tmp_path / locks.OWNER_FILE).exists()
