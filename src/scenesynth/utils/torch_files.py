"""What to say when ``torch.load(weights_only=True)`` refuses a file.

torch's own refusal goes on to explain how to load the file anyway ("Re-running torch.load with
weights_only set to False ..."): quoted, even in part, it reads as advice to do the unsafe thing.
Every loader of this project reports such a file in the same plain words instead: it holds code,
and it was not loaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path

WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
# How torch's weights-only unpickler names a class or function it will not import or call; other
# refusals (an unknown opcode: garbage bytes) are a file that is no checkpoint at all.
CODE_REFUSALS = ("GLOBAL", "Can only create new object", "Can only build")


def holds_code(err: BaseException) -> bool:
    """Whether ``err`` is torch.load(weights_only=True) refusing pickled objects other than weights."""
    text = str(err)
    return (isinstance(err, pickle.UnpicklingError) and WEIGHTS_ONLY_REFUSAL in text
            and any(marker in text for marker in CODE_REFUSALS))


def holds_code_message(path: str | Path) -> str:
    return (f"{path}: not loaded: it holds pickled Python objects besides weights (code that would run on "
            f"loading), and this project loads weights only")


def unreadable_detail(err: BaseException, limit: int = 160) -> str:
    """One line on why torch could not read a file, without torch's advice on loading it unsafely: for a
    weights-only refusal, only the unpickler's own finding (e.g. "Unsupported operand 60": not a pickle)."""
    text = str(err)
    if WEIGHTS_ONLY_REFUSAL in text and "WeightsUnpickler error:" in text:
        finding = " ".join(text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0].split())
        return f"{type(err).__name__}: {finding[:limit]} (damaged, or not a torch checkpoint)"
    text = " ".join(text.split())
    return f"{type(err).__name__}: {text[:limit]}" if text else type(err).__name__
