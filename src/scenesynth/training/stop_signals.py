"""Stopping a training run early, on request, so that it can be resumed exactly.

SLURM sends SIGTERM at a job's time limit and on preemption (then SIGKILL after `KillWait`,
30 s by default), and `sbatch --signal=USR1@SECONDS` sends SIGUSR1 ahead of the limit. Either
signal only sets a flag here; the training loop looks at it between steps, writes a checkpoint
at the step it is at (with the position in the batch stream, so the resumed run draws exactly
the batches the uninterrupted one would have), closes the MLflow run and exits with
:data:`RESUMABLE_EXIT`. The same command then resumes and ends with the same weights.

Among several ranks the flag is agreed on by an all-reduce every step: a signal that reaches
one rank a step earlier than another must not make them stop at different steps (the one that
stopped would leave the others waiting in a collective forever). The torchrun launcher passes
the signals on to its ranks (launch.py).
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
RESUMABLE_EXIT = 75  # EX_TEMPFAIL (sysexits.h): a temporary failure, the same command may be run again


class TrainingStopped(Exception):
    """Training stopped early on a signal, after writing a checkpoint; rerunning the command resumes it.

    Not a RuntimeError: the command line reports it with its own exit status, not as a failure."""

    def __init__(self, step: int | None, signal_name: str, checkpoint):
        self.step, self.signal_name, self.checkpoint = step, signal_name, checkpoint
        where = f"at step {step}" if step is not None else "(every rank at the same step)"
        super().__init__(f"stopped early by {signal_name} {where}; resumable: {checkpoint} holds the step reached, "
                         "run the same command again to continue (the weights end as an uninterrupted run's)")


class StopRequest:
    """Catches the stop signals while training runs (a context manager); `requested(ctx)` says whether to stop."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread only
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _note(self, signum: int, _frame) -> None:
        if self.signum is None:
            log.warning("%s received: stopping after this step with a checkpoint", signal.Signals(signum).name)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "a signal on another rank"

    def requested(self, ctx) -> bool:
        """True if this process, or (among several ranks) any rank, was asked to stop."""
        from scenesynth.training.distributed import any_rank  # (torch: not at the command line's start)

        return any_rank(self.signum is not None, ctx)
