"""`python -m stilts.store` (ls, du, verify, gc) on hand-made stores in the real folder layout, the
locks that keep a stage whole while jobs train and runs read it, dropping an encoder, file modes
under the umask, and (slow) the store after the quickstart grids: one encoder per intermediate
stage, none per target stage."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from stilts.store.files import atomic_output, umask_mode, write_json_atomic
from stilts.store import locks, stages
from stilts.store.__main__ import main


def make_stage(store: Path, label: str, key: str, role: str, encoder_bytes: int = 50_000) -> Path:
    """A finished stage as training exports it: encoder, head, dev predictions, stage.json."""
    folder = store / f"{label}-{key}"
    (folder / "encoder").mkdir(parents=True)
    (folder / "encoder" / "model.safetensors").write_bytes(os.urandom(encoder_bytes))
    (folder / "encoder" / "config.json").write_text("{}")
    (folder / "heads").mkdir()
    (folder / "heads" / f"{label}.safetensors").write_bytes(os.urandom(300))
    (folder / "predictions").mkdir()
    (folder / "predictions" / "dev-en.tsv").write_text("entailment\n")
    stages.publish(folder, {"task": label, "role": role, "key": key, "tasks": {label: {"head": "classification"}}})
    return folder


def make_run(runs: Path, name: str, stage_keys: dict[str, str]) -> Path:
    folder = runs / name
    write_json_atomic(folder / "results.json", {
        "target": "xnli", "intermediate": [], "model": "tiny", "seed": 1, "metrics": {}, "average": {}, "score": 1.0,
        "run_key": "k", "stages": {stage: {"key": key} for stage, key in stage_keys.items()}})
    return folder


def store_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def every_path(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


@pytest.fixture
def store(tmp_path) -> Path:
    """outputs/stages and outputs/runs: an intermediate stage used by two runs, their two target
    stages (one evaluated, its encoder still there as if keep_target_encoders=true), and a stage
    no run uses."""
    stages_dir, runs = tmp_path / "outputs" / "stages", tmp_path / "outputs" / "runs"
    make_stage(stages_dir, "squad", "aaaa", "intermediate")
    make_stage(stages_dir, "xnli", "bbbb", "target")
    make_stage(stages_dir, "pawsx", "cccc", "target")
    make_stage(stages_dir, "mnli", "dddd", "intermediate")
    make_run(runs, "xnli/squad/tiny/seed1-x", {"1-squad": "aaaa", "2-xnli": "bbbb"})
    make_run(runs, "pawsx/squad/tiny/seed1-x", {"1-squad": "aaaa", "2-pawsx": "cccc"})
    return stages_dir


def test_ls_names_role_state_encoder_size_and_the_runs_using_each_stage(store, capsys) -> None:
    code, out, _ = store_cli(capsys, "ls", str(store))
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and "-" in line.split()[0]}
    assert rows["squad-aaaa"].split()[1:4] == ["intermediate", "squad", "finished"]
    assert rows["squad-aaaa"].split()[-1] == "2" and "kept" in rows["squad-aaaa"]
    assert rows["mnli-dddd"].split()[-1] == "0"
    assert "used by xnli/squad/tiny/seed1-x" in out and "used by pawsx/squad/tiny/seed1-x" in out
    code, out, _ = store_cli(capsys, "ls", str(store), "--json")
    listing = json.loads(out)
    assert listing["totals"]["intermediate"]["stages"] == 2 and listing["totals"]["target"]["stages"] == 2
    assert listing["totals"]["total"]["bytes"] == sum(entry["bytes"] for entry in listing["stages"])
    squad = next(entry for entry in listing["stages"] if entry["name"] == "squad-aaaa")
    assert squad["bytes_by_kind"]["encoder"] == 50_000 + 2 and squad["bytes_by_kind"]["heads"] == 300


def test_du_gives_bytes_by_kind_and_keeps_resume_state_and_leftovers_apart(store, capsys) -> None:
    (store / "squad-aaaa" / "lightning").mkdir()
    (store / "squad-aaaa" / "lightning" / "last.ckpt").write_bytes(b"x" * 7000)  # keep_checkpoints=true
    (store / "squad-aaaa" / ".encoder-4242").mkdir()  # the staging folder of a killed export
    (store / "squad-aaaa" / ".encoder-4242" / "model.safetensors").write_bytes(b"y" * 900)
    code, out, _ = store_cli(capsys, "du", str(store), "--json")
    assert code == 0
    squad = next(entry for entry in json.loads(out)["stages"] if entry["name"] == "squad-aaaa")
    assert squad["resume_bytes"] == 7000 and squad["leftover_bytes"] == 900
    assert squad["bytes"] == sum(squad["bytes_by_kind"].values()) < 50_000 + 7000
    code, out, _ = store_cli(capsys, "du", str(store))
    assert "intermediate" in out and "7.0 kB" in out and "900 B" in out


def test_read_only_commands_write_nothing_and_see_training_and_in_use_stages(store, capsys) -> None:
    partial = store / "udpos-eeee"
    partial.mkdir()
    with FileLock(str(store / "xnli-bbbb" / locks.LOCK_FILE)):  # held by a job that trains it again
        with locks.in_use(store / "squad-aaaa"):  # a run reads it
            before = every_path(store.parent)
            for command in ("ls", "du", "verify"):
                assert store_cli(capsys, command, str(store))[0] == 0
            code, out, _ = store_cli(capsys, "ls", str(store), "--json")
            assert every_path(store.parent) == before
    states = {entry["name"]: entry for entry in json.loads(out)["stages"]}
    assert states["xnli-bbbb"]["state"] == "training" and states["squad-aaaa"]["in_use"]
    assert states["udpos-eeee"]["state"] == "unfinished" and not states["pawsx-cccc"]["in_use"]


def test_verify_checks_checksums_and_names_the_damaged_stage(store, capsys) -> None:
    assert store_cli(capsys, "verify", str(store))[0] == 0
    head = store / "pawsx-cccc" / "heads" / "pawsx.safetensors"
    head.write_bytes(bytes(byte ^ 1 for byte in head.read_bytes()))  # same size, other bytes: only checksums see it
    code, out, err = store_cli(capsys, "ls", str(store))
    assert "damaged" not in out  # ls checks sizes alone
    code, out, err = store_cli(capsys, "verify", str(store))
    assert code == 1
    assert "pawsx-cccc: DAMAGED" in out and "heads/pawsx.safetensors" in out
    assert err.startswith("error: 1 damaged stage(s): pawsx-cccc")
    assert "squad-aaaa: ok" in out


def test_gc_dry_run_lists_what_a_killed_job_left_and_gc_removes_it(store, capsys) -> None:
    runs = store.parent / "runs"
    # A killed job: a partial stage with nothing to resume, another with a resume checkpoint.
    (store / "udpos-eeee").mkdir()
    (store / "udpos-eeee" / locks.LOCK_FILE).touch()
    resumable = store / "panx-ffff" / "lightning"
    resumable.mkdir(parents=True)
    (resumable / "last.ckpt").write_bytes(b"c" * 3000)
    write_json_atomic(resumable / "last.ckpt.sha256.json", {"size": 3000, "sha256": "0", "global_step": 40})
    # A half-written head of a killed export, a damaged stage set aside, a killed evaluation, an interrupted gc.
    (store / "squad-aaaa" / "heads" / ".squad.safetensors.abc.tmp").write_bytes(b"t" * 100)
    damaged = make_stage(store, "tydiqa", "gggg", "target")
    stages.set_aside(damaged / stages.STAGE_FILE)
    (runs / "xnli/squad/tiny/seed1-x" / ".predictions-999").mkdir()
    (runs / "xnli/squad/tiny/seed1-x" / ".predictions-999" / "test-en.tsv").write_text("x\n")
    (store / ".gc-old-1").mkdir()
    before = every_path(store.parent)

    code, out, _ = store_cli(capsys, "gc", str(store), "--dry-run")
    assert code == 0 and every_path(store.parent) == before
    assert "partial stage of a killed job (nothing to resume)" in out and "udpos-eeee" in out
    assert "unfinished write of a killed job" in out and ".squad.safetensors.abc.tmp" in out and ".predictions-999" in out
    assert "set-aside damaged stage" in out and "tydiqa-gggg" in out
    assert "target-stage encoder kept past its evaluation" in out and "xnli-bbbb/encoder" in out
    assert "removal of an earlier gc, interrupted" in out
    assert "kept: 1 unfinished stage (a rerun resumes it)" in out and "--unfinished removes it" in out
    assert "kept: 1 stage no run uses" in out and "mnli-dddd" in out  # needs --unreferenced
    assert "would free" in out

    code, out, _ = store_cli(capsys, "gc", str(store))
    assert code == 0 and "freed" in out
    left = {path.name for path in store.iterdir()}
    assert left == {"squad-aaaa", "xnli-bbbb", "pawsx-cccc", "mnli-dddd", "panx-ffff"}
    assert not (store / "squad-aaaa" / "heads" / ".squad.safetensors.abc.tmp").exists()
    assert not (runs / "xnli/squad/tiny/seed1-x" / ".predictions-999").exists()
    for target in ("xnli-bbbb", "pawsx-cccc"):  # evaluated target stages: head, predictions, record stay
        assert not (store / target / "encoder").exists() and (store / target / "heads").is_dir()
        summary = json.loads((store / target / stages.STAGE_FILE).read_text())
        assert "encoder/model.safetensors" in summary[stages.DROPPED]["files"]
    assert (store / "squad-aaaa" / "encoder" / "model.safetensors").exists()  # intermediate stages keep theirs
    assert store_cli(capsys, "verify", str(store))[0] == 0

    code, out, _ = store_cli(capsys, "gc", str(store), "--unfinished", "--unreferenced")
    assert {path.name for path in store.iterdir()} == {"squad-aaaa", "xnli-bbbb", "pawsx-cccc"}
    assert store_cli(capsys, "gc", str(store), "--dry-run")[1].splitlines()[0].endswith("would remove 0 items (0 B)")


def test_gc_never_touches_a_stage_a_job_trains_or_a_run_reads(store, capsys) -> None:
    with FileLock(str(store / "mnli-dddd" / locks.LOCK_FILE)), locks.in_use(store / "xnli-bbbb"):
        code, out, _ = store_cli(capsys, "gc", str(store), "--unreferenced")
    assert code == 0
    assert out.count("skipped: a job is training it or a run is reading it") == 1  # xnli's encoder
    assert (store / "xnli-bbbb" / "encoder" / "model.safetensors").exists()
    assert (store / "mnli-dddd" / "stage.json").exists()  # training: not even listed
    assert not (store / "pawsx-cccc" / "encoder").exists()


def test_bad_arguments_end_with_one_error_line(tmp_path, capsys) -> None:
    code, _, err = store_cli(capsys, "ls", str(tmp_path / "nowhere"))
    assert code == 2 and err.startswith("error: no stage store at") and err.count("\n") == 1
    (tmp_path / "stages").mkdir()
    code, _, err = store_cli(capsys, "gc", str(tmp_path / "stages"), "--unreferenced")
    assert code == 2 and "gc --unreferenced needs the run folders" in err
    code, _, err = store_cli(capsys, "du", str(tmp_path / "stages"), "--runs", str(tmp_path / "none"))
    assert code == 2 and "--runs" in err


def test_a_dropped_encoder_is_never_half_gone_for_a_reader(tmp_path) -> None:
    folder = make_stage(tmp_path, "xnli", "bbbb", "target")
    summary = stages.finished(folder)
    with locks.in_use(folder):  # a run reads the stage: nobody holds it alone
        with locks.alone(folder) as alone:
            assert not alone
    with locks.alone(folder) as alone:
        assert alone
        freed = stages.drop_encoder(folder, summary)
    assert freed == 50_000 + 2
    after = stages.finished(folder, set_aside_damaged=False)
    assert after is not None and not stages.has_encoder(after)  # still a finished, intact stage
    assert not (folder / "encoder").exists() and not list(folder.glob(".encoder-dropped-*"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_and_folders_get_the_mode_the_umask_gives(tmp_path, umask) -> None:
    previous = os.umask(umask)
    try:
        with atomic_output(tmp_path / "a" / "results.json") as stream:
            stream.write(b"{}")
        assert umask_mode() == 0o666 & ~umask and umask_mode(directory=True) == 0o777 & ~umask
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a" / "results.json").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow
def test_a_run_writes_lab_readable_files(tmp_path, stilts_cache) -> None:
    """results.json, stage.json, the encoder's safetensors and predictions under umask 0002: group-writable."""
    environment = dict(os.environ, STILTS_CACHE=str(stilts_cache), HF_HUB_OFFLINE="1", WANDB_MODE="offline")
    done = subprocess.run(["sh", "-c", f"umask 0002 && exec {sys.executable} -m stilts.train experiment=quickstart "
                           "+intermediate=squad target=xnli 'target.languages=[en]' train.max_epochs=1"],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = tmp_path / "outputs"
    checked = [*outputs.rglob("results.json"), *outputs.rglob("stage.json"), *outputs.rglob("model.safetensors"),
               *outputs.rglob("predictions/*"), *outputs.rglob("heads/*")]
    assert len(checked) >= 7
    for path in checked:
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path
    for folder in (outputs / "stages", *outputs.glob("stages/*"), *outputs.glob("stages/*/*")):
        if folder.is_dir():
            assert stat.S_IMODE(folder.stat().st_mode) == 0o775, folder


@pytest.mark.slow
def test_after_the_quickstart_grids_only_intermediate_stages_keep_encoders(quickstart_sweeps) -> None:
    """After the quickstart sweeps (part of the paper grid and the question sweeps): one encoder per
    intermediate stage, none per target stage; du shows it, verify passes, gc has nothing to do."""
    stages_dir = quickstart_sweeps / "stages"
    listed = subprocess.run([sys.executable, "-m", "stilts.store", "ls", str(stages_dir), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)["stages"]
    assert entries and all(entry["state"] == "finished" for entry in entries)
    for entry in entries:
        assert entry["encoder"] == ("kept" if entry["role"] == "intermediate" else "dropped"), entry["name"]
        assert entry["resume_bytes"] == 0 and entry["leftover_bytes"] == 0
        assert entry["used_by"], entry["name"]  # every stage is some run's
    intermediate = [entry for entry in entries if entry["role"] == "intermediate"]
    assert len(intermediate) >= 20  # the paper grid's 10 (seed 1), the order sweep's chains and seeds, the others
    encoders = sum(entry["bytes_by_kind"]["encoder"] for entry in entries)
    assert encoders == sum(entry["bytes_by_kind"]["encoder"] for entry in intermediate)
    du = subprocess.run([sys.executable, "-m", "stilts.store", "du", str(stages_dir)], capture_output=True, text=True,
                        timeout=300)
    assert du.returncode == 0 and "intermediate" in du.stdout and "target" in du.stdout
    verified = subprocess.run([sys.executable, "-m", "stilts.store", "verify", str(stages_dir)], capture_output=True,
                              text=True, timeout=600)
    assert verified.returncode == 0 and "all intact" in verified.stdout, verified.stdout[-2000:]
    collected = subprocess.run([sys.executable, "-m", "stilts.store", "gc", str(stages_dir), "--dry-run"],
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0 and "would remove 0 items" in collected.stdout, collected.stdout[-2000:]
    # What the runs say they added is what the store holds.
    added = sum(json.loads(path.read_text())["store_bytes_added"] for path in (quickstart_sweeps / "runs").rglob("results.json"))
    assert added == sum(entry["bytes"] for entry in entries)


def test_gc_counts_a_stage_that_goes_whole_once(store, capsys) -> None:
    (store / "mnli-dddd" / "heads" / ".mnli.safetensors.x.tmp").write_bytes(b"t" * 500)  # a leftover inside
    whole = sum(path.stat().st_size for path in (store / "mnli-dddd").rglob("*") if path.is_file())
    code, out, _ = store_cli(capsys, "gc", str(store), "--dry-run", "--unreferenced")
    assert code == 0 and "mnli.safetensors.x.tmp" not in out  # it goes with its stage
    [line] = [line for line in out.splitlines() if "stage no run uses" in line]
    assert f"{whole / 1000:.1f} kB" in line


def test_a_run_needs_the_encoders_it_evaluates_or_trains_from(tmp_path) -> None:
    """XCOPA-like chain: intermediate -> recipe -> target. The target's encoder is always read; a
    recipe's only when the target must be trained (unfinished, or finished with its encoder dropped)."""
    from stilts.store import encoders
    from stilts.store.stages import Stage

    chain = [Stage(index, role, label, {}, key, tmp_path / f"{label}-{key}") for index, role, label, key in
             ((1, "intermediate", "squad", "a1"), (2, "target-recipe", "siqa", "b2"), (3, "target", "copa", "c3"))]
    assert encoders.needed(chain) == [True, True, True]  # nothing trained yet
    for stage in chain:
        make_stage(tmp_path, stage.label, stage.key, stage.role)
    assert encoders.needed(chain) == [True, False, True]  # the target keeps its encoder: the recipe is not read
    for stage in chain[1:]:
        with locks.alone(stage.directory):
            stages.drop_encoder(stage.directory, stages.finished(stage.directory))
    assert encoders.needed(chain) == [True, True, True]  # the target is trained again from the recipe's encoder
    assert encoders.drop_target_encoders(chain) == {}  # nothing left to drop
