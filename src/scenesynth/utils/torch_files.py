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


def holds_code(err: BaseException) -> bool:
    """Whether ``err`` is torch.load(weights_only=True) refusing pickled objects other than weights."""
    return isinstance(err, pickle.UnpicklingError) and WEIGHTS_ONLY_REFUSAL in str(err)


def holds_code_message(path: str | Path) -> str:
    return (f"{path}: not loaded: it holds pickled Python objects besides weights (code that would run on "
            f"loading), and this project loads weights only")
