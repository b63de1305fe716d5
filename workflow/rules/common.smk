# Shared set-up: load and validate params.yaml (+ overlay) before any job starts,
# and the helpers the rules use. All logic lives in the scenesynth package.
import shlex

from snakemake.exceptions import WorkflowError

from scenesynth import paths as P
from scenesynth.config import ConfigError, source_fingerprint
from scenesynth.data.sources import AUDIOCAPS_SPLITS
from scenesynth.pretrained import PIPELINE_MODELS
from scenesynth.workflow import (acquire_inputs, overlay_from, pretrained_inputs, resolve_params, section,
                                 train_settings, train_threads)

try:
    OVERLAY = overlay_from(config, "params.yaml")
    PARAMS = resolve_params("params.yaml", OVERLAY)
except ConfigError as err:
    raise WorkflowError(str(err))

# Passed to every `scenesynth` call (shell-quoted).
CLI_CONFIG = "--params params.yaml" + (f" --overlay {shlex.quote(OVERLAY)}" if OVERLAY else "")


wildcard_constraints:
    seed=r"\d+",
