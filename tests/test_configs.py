"""Every config in conf/ composes, resolves and instantiates (configs must never drift from the code)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

import stilts.cli.resolvers  # noqa: F401  (registers the stilts.* resolvers)
from stilts.run.plan import plan_stages
from stilts.tasks import get_task
from stilts.tasks.common.sources import SAMPLES_ROOT

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(*overrides: str, hydra_config: bool = False):
    with initialize_config_module("stilts.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_config)


def test_every_group_has_options() -> None:
    for group in ("model", "target", "intermediate", "trainer", "logger", "data", "experiment"):
        assert options(group), group


@pytest.mark.parametrize("group,option", [(g, o) for g in ("model", "target", "trainer", "logger", "data", "experiment")
                                          for o in options(g)])
def test_option_composes_resolves_and_instantiates(group: str, option: str, tmp_path) -> None:
    # data.root beside data=hub serves what the Hub does not (CCG, retrieval files, Mewsli-X pairs)
    cfg = compose_config(f"{group}={option}", f"data.root={SAMPLES_ROOT}" if option != "sample" else "seed=1",
                         f"paths.output_dir={tmp_path}")
    OmegaConf.resolve(cfg)
    trainer_factory = instantiate(cfg.trainer)
    assert isinstance(trainer_factory, functools.partial)
    for node in (cfg.logger or {}).values():
        logger_factory = instantiate(node)
        assert isinstance(logger_factory, functools.partial)
    stages = plan_stages(cfg)
    if get_task(cfg.target.name).retrieve is None:
        assert stages[-1].spec.name == cfg.target.name
    else:  # retrieval targets are scored on embeddings: only their recipe's stages train (XTREME-R's)
        assert [stage.label for stage in stages] == list(cfg.target.get("before") or {})
        assert all(stage.role == "target-recipe" for stage in stages)
    assert cfg.target.name in str(cfg.paths.run_dir)


@pytest.mark.parametrize("option", options("intermediate"))
def test_intermediate_options_plan_stages(option: str) -> None:
    extra = ["intermediate.mix.tasks=[squad,mnli]"] if option == "mix" else []
    cfg = compose_config(f"+intermediate={option}", "experiment=quickstart", *extra)
    stages = plan_stages(cfg)
    expected = [] if option == "none" else [option]
    assert [s.label for s in stages[:-1]] == expected
    for stage in stages[:-1]:
        assert stage.role == "intermediate"
        for task in stage.tasks.values():
            assert {"epochs", "effective_batch_size"} <= set(task.settings)  # defaults filled in
            assert task.languages == (task.spec.languages if task.spec.name == "mlm" else ("en",))
    assert cfg.paths.run_name.startswith(f"xnli/{option}/tiny/seed42-")


def test_intermediate_list_keeps_order_and_chains_stage_keys() -> None:
    forward = plan_stages(compose_config("+intermediate=[mnli,squad]", "target=tydiqa", "experiment=quickstart"))
    backward = plan_stages(compose_config("+intermediate=[squad,mnli]", "target=tydiqa", "experiment=quickstart"))
    assert [s.spec.name for s in forward] == ["mnli", "squad", "tydiqa"]
    assert [s.spec.name for s in backward] == ["squad", "mnli", "tydiqa"]
    # The same task trained after a different stage is a different stage.
    assert forward[1].key != backward[0].key
    assert forward[-1].key != backward[-1].key


def test_intermediate_stages_planned_alone_keep_their_keys() -> None:
    cfg = compose_config("+intermediate=[squad,mnli]", "target=xcopa", "experiment=quickstart")
    full = plan_stages(cfg)
    alone = plan_stages(cfg, intermediate_only=True)
    assert [stage.role for stage in full] == ["intermediate", "intermediate", "target-recipe", "target"]
    assert [(stage.label, stage.key) for stage in alone] == [(stage.label, stage.key) for stage in full[:2]]


def test_intermediate_stage_key_is_shared_across_targets() -> None:
    to_xnli = plan_stages(compose_config("+intermediate=squad", "target=xnli", "experiment=quickstart"))
    to_udpos = plan_stages(compose_config("+intermediate=squad", "target=udpos", "experiment=quickstart"))
    assert to_xnli[0].key == to_udpos[0].key
    assert to_xnli[0].directory == to_udpos[0].directory


def test_evaluation_languages_do_not_change_the_target_stage_key() -> None:
    every = plan_stages(compose_config("target=xnli", "experiment=quickstart"))
    subset = plan_stages(compose_config("target=xnli", "target.languages=[de]", "experiment=quickstart"))
    assert every[-1].key == subset[-1].key


def test_defaults_follow_the_paper_protocol() -> None:
    cfg = compose_config("+intermediate=squad", "target=tydiqa")
    assert cfg.model.name_or_path == "xlm-roberta-large"
    assert cfg.train.lr == 1e-5 and cfg.train.weight_decay == 0.01 and cfg.train.warmup_ratio == 0.1
    assert cfg.trainer.gradient_clip_val == 1.0
    assert cfg.intermediate.squad.max_length == 384 and cfg.intermediate.squad.doc_stride == 128
    assert cfg.intermediate.squad.effective_batch_size == 16 and cfg.target.effective_batch_size == 16
    xnli = compose_config("target=xnli").target
    assert xnli.max_length == 256 and xnli.effective_batch_size == 32


@pytest.mark.parametrize("overrides,gpus,tasks", [
    (("trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"), 4, 4),  # one task per GPU, on each of 2 nodes
    (("trainer=gpu",), 1, 1),
    (("trainer=default",), 1, 1),  # accelerator auto: runs on the node's GPU, so it asks for one
    (("trainer=cpu",), None, 1),  # a CPU partition: no GPU requested
    (("trainer=ddp_cpu",), None, 2),  # DDP on CPU: 2 tasks, no GPU
    (("trainer=ddp_cpu", "hydra.launcher.tasks_per_node=1", "hydra.launcher.cpus_per_task=2"), None, 1),
])
def test_slurm_launcher_resources_follow_the_trainer(overrides, gpus, tasks) -> None:
    from hydra.utils import instantiate

    from hydra_plugins.stilts_launcher.slurm import SlurmLauncher

    cfg = compose_config("hydra/launcher=slurm", *overrides, hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.gpus_per_node == gpus and launcher.tasks_per_node == tasks
    assert launcher.nodes == cfg.trainer.num_nodes and launcher.max_num_timeout > 0 and launcher.signal_delay_s >= 120
    assert isinstance(instantiate(launcher), SlurmLauncher)


def test_quickstart_uses_tiny_model_and_samples() -> None:
    cfg = compose_config("experiment=quickstart")
    assert cfg.model.name_or_path == "tiny"
    assert cfg.data.source == "files" and Path(cfg.data.root).name == "samples"


@pytest.mark.parametrize("option", options("logger"))
def test_each_logger_option_makes_one_logger_per_stage(option: str, tmp_path, monkeypatch) -> None:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    from stilts.run.loggers import make_loggers

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(f"logger={option}", f"paths.output_dir={tmp_path}")
    loggers = make_loggers(cfg, "1-xnli", "target", "xnli/none/seed42")
    expected = {"csv": [CSVLogger], "tensorboard": [TensorBoardLogger], "wandb": [WandbLogger], "none": []}[option]
    assert len(loggers) == len(expected)
    assert all(isinstance(logger, kind) for logger, kind in zip(loggers, expected))
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            assert logger._wandb_init["name"] == "xnli/none/seed42/1-xnli"
            assert logger._wandb_init["job_type"] == "target"
            assert logger._wandb_init["group"].startswith("sweep-")
        else:
            assert logger.version == "1-xnli"
            assert str(tmp_path) in logger.save_dir


@pytest.mark.parametrize("preset,model,seeds", [("paper_grid", "xlm-roberta-large", "1,2,3"),
                                               ("paper_grid_quickstart", "tiny", "1,2")])
def test_paper_grid_sweeps_the_nine_tasks_the_mixture_and_the_baseline_on_xtreme(preset, model, seeds) -> None:
    from stilts.eval.xtreme import XTREME_CATEGORIES
    from stilts.tasks import task_names

    cfg = compose_config(f"experiment={preset}", hydra_config=True)
    params = cfg.hydra.sweeper.params
    setups = params["+intermediate"].split(",")
    assert setups[0] == "none" and setups[-1] == "all9"
    assert sorted(setups[1:-1]) == sorted(name for name in task_names() if get_task(name).xstilts_pool)
    assert params["target"].split(",") == [task for tasks in XTREME_CATEGORIES.values() for task in tasks]
    assert params["seed"] == seeds and cfg.model.name_or_path == model


# jiant's XTREME scripts (nyu-mll/jiant, jiant/scripts/benchmarks/xtreme/subscripts/): epochs and
# batches from d_write_configs.sh (train_batch_size x gradient_accumulation_steps), lengths from
# c_tokenize_and_cache.sh. Retrieval targets have no training: only their length.
JIANT_XTREME = {
    "xnli": {"epochs": 2, "effective_batch_size": 32, "max_length": 256},
    "pawsx": {"epochs": 5, "effective_batch_size": 32, "max_length": 256},
    "udpos": {"epochs": 10, "effective_batch_size": 32, "max_length": 256},
    "panx": {"epochs": 10, "effective_batch_size": 32, "max_length": 256},
    "xquad": {"epochs": 2, "effective_batch_size": 16, "max_length": 384},
    "mlqa": {"epochs": 2, "effective_batch_size": 16, "max_length": 384},
    "tydiqa": {"epochs": 2, "effective_batch_size": 16, "max_length": 384},
    "bucc": {"max_length": 512},
    "tatoeba": {"max_length": 512},
}


@pytest.mark.parametrize("target", sorted(JIANT_XTREME))
def test_target_settings_follow_jiants_xtreme_scripts(target: str) -> None:
    cfg = compose_config(f"target={target}")
    assert {key: cfg.target[key] for key in JIANT_XTREME[target]} == JIANT_XTREME[target]
    assert "jiant" in (CONF / "target" / f"{target}.yaml").read_text(encoding="utf-8")  # the YAML cites it
    assert cfg.model.retrieval_layer == 14  # XLM-R large: jiant's xtreme_runconfig_writer.py, mean pooling


def test_default_trainer_uses_bf16_on_a_gpu_that_supports_it(monkeypatch) -> None:
    import torch

    monkeypatch.setattr(stilts.cli.resolvers, "gpu_driver_absent", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert compose_config().trainer.precision == "bf16-mixed"
    assert compose_config("trainer=cpu").trainer.precision == "32-true"  # a GPU there, but not used
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert compose_config().trainer.precision == "32-true"  # e.g. a V100
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compose_config().trainer.precision == "32-true"
    monkeypatch.setattr(stilts.cli.resolvers, "gpu_driver_absent", lambda: True)  # no driver: torch is not even asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert compose_config().trainer.precision == "32-true"


def test_gradient_checkpointing_changes_no_key() -> None:
    from stilts.store.identity import run_key

    plain = compose_config("experiment=quickstart", "+intermediate=squad", "target=tydiqa")
    checkpointed = compose_config("experiment=quickstart", "+intermediate=squad", "target=tydiqa",
                                  "model.gradient_checkpointing=true")
    assert run_key(plain) == run_key(checkpointed)
    assert [s.key for s in plan_stages(plain)] == [s.key for s in plan_stages(checkpointed)]


@pytest.mark.cli
def test_xstilts_preset_pins_the_papers_protocol(tmp_path) -> None:
    """`experiment=xstilts --cfg job` shows jiant's XTREME protocol (values in conf/experiment/xstilts.yaml)."""
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "stilts.train", "experiment=xstilts", "target=tydiqa", "--cfg", "job"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    cfg = OmegaConf.create(shown.stdout)
    assert cfg.model.name_or_path == "xlm-roberta-large" and cfg.model.retrieval_layer == 14
    assert cfg.train.lr == 1e-5 and cfg.train.warmup_ratio == 0.1
    assert (cfg.train.eval_every_steps, cfg.train.eval_subset, cfg.train.patience) == (1000, 500, 30)
    assert (cfg.target.epochs, cfg.target.effective_batch_size, cfg.target.max_length) == (2, 16, 384)
    text = (CONF / "experiment" / "xstilts.yaml").read_text(encoding="utf-8")
    for key in ("lr", "warmup_ratio", "eval_every_steps", "eval_subset", "patience", "retrieval_layer"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"{key} has no source"
