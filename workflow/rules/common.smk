# Shared set-up: load and validate params.yaml (+ overlay) before any job starts,
# and the helpers the rules use. All logic lives in the scenesynth package; what each rule
# depends on (settings, code) is the stage table's (scenesynth.workflow.stages).
import shlex

from snakemake.exceptions import WorkflowError

from scenesynth import paths as P
from scenesynth.config import ConfigError
from scenesynth.data.audiocaps import SPLITS as AUDIOCAPS_SPLITS
from scenesynth.pretrained.models import PIPELINE_MODELS
from scenesynth.workflow.rules import (acquire_inputs, acquire_inventory, dev_set_inputs, dev_set_options, option_of,
                                       overlay_from, pretrained_inputs, resolve_params, resynth_reference_inputs,
                                       train_eval_inputs, train_threads)
from scenesynth.workflow.stages import stage_code, stage_settings

try:
    OVERLAY = overlay_from(config, "params.yaml")
    PARAMS = resolve_params("params.yaml", OVERLAY)
except ConfigError as err:
    raise WorkflowError(str(err))

# Passed to every `scenesynth` call (shell-quoted).
CLI_CONFIG = "--params params.yaml" + (f" --overlay {shlex.quote(OVERLAY)}" if OVERLAY else "")


wildcard_constraints:
    seed=r"\d+",
