"""scenesynth: a reproducible text-to-audio GAN pipeline (KT Corporation, DCASE 2024 Task 7).

``from scenesynth import Synthesizer`` is the Python way to use a trained model. It is resolved
lazily (module ``__getattr__``): ``import scenesynth`` alone, which every module does for
``scenesynth.paths``, imports nothing else, so the package's own ``__init__`` adds no import edge
(no cycle, and no stage's code fingerprint grows by the inference code).
"""

import importlib

__version__ = "0.1.0"
_LAZY = {"Synthesizer": "scenesynth.inference.synthesizer", "Synthesis": "scenesynth.inference.synthesizer"}
__all__ = ["Synthesizer", "Synthesis", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'scenesynth' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
