"""Fault injection for the crash tests: with STILTS_KILL_AT set, the real CLI kills itself (SIGKILL,
like a preempted or OOM-killed job) at a chosen, reproducible point; with STILTS_STEP_SECONDS set,
each training batch waits that long first (a job that must still be training when a scheduler's
signal comes, without keeping a core busy: the numbers are unchanged). Put this folder on PYTHONPATH.

STILTS_KILL_AT = `train:<task>:<step>` (before the training batch that follows <step> optimizer
steps), `validate:<task>:<n>` (at the end of the n-th validation), `test:<task>` (first test
batch), `publish:<task>` (after the export, before stage.json is written).
"""

import os
import signal

SPEC = os.environ.get("STILTS_KILL_AT")
STEP_SECONDS = float(os.environ.get("STILTS_STEP_SECONDS") or 0)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if SPEC or STEP_SECONDS:
    import time

    import pytorch_lightning as pl

    point, task, *number = (SPEC or "none:none").split(":")
    number = int(number[0]) if number else 0

    def _in_task(trainer) -> bool:
        return os.path.basename(str(trainer.default_root_dir)).startswith(f"{task}-")

    class Faults(pl.Callback):
        validations = 0

        def on_train_batch_start(self, trainer, *args) -> None:
            time.sleep(STEP_SECONDS)
            if point == "train" and _in_task(trainer) and trainer.global_step == number:
                _die()

        def on_validation_end(self, trainer, *args) -> None:
            if point == "validate" and _in_task(trainer) and trainer.state.fn == "fit":
                Faults.validations += 1
                if Faults.validations == number:
                    _die()

        def on_test_batch_start(self, trainer, *args) -> None:
            if point == "test" and _in_task(trainer):
                _die()

    original_init = pl.Trainer.__init__

    def patched_init(self, *args, callbacks=None, **kwargs):
        original_init(self, *args, callbacks=[Faults(), *(callbacks or [])], **kwargs)

    pl.Trainer.__init__ = patched_init

    if point == "publish":
        import stilts.store.stages

        original_publish = stilts.store.stages.publish

        def patched_publish(directory, summary):
            if directory.name.startswith(f"{task}-"):
                _die()
            return original_publish(directory, summary)

        stilts.store.stages.publish = patched_publish
