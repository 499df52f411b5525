"""Evaluate a training workdir from its checkpoints.

  ecg-jax evaluate --workdir W              # latest checkpoint of every program
  ecg-jax evaluate --workdir W --epoch 40   # the checkpoint after epoch 40
  ecg-jax evaluate --workdir W --data_dir ../shared/data   # data moved since training
  ecg-jax evaluate --workdir W --allow_changed_model_source   # your network's file changed since training

Restores every member, scores it on the test windows of its dataset in
evaluation mode (running BatchNorm statistics, outputs de-normalised to mV),
appends the rows to W/results.jsonl (same schema as the baselines; a later row
replaces an earlier one with the same method/dataset/seed) and prints them.
"""

import jax
from absl import flags

from ecg_jax.cli import define_distributed_flags
from ecg_jax.errors import ConfigError

DISTRIBUTED = True

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (holds config.json and checkpoints/).",
                               required=True)
_EPOCH = flags.DEFINE_integer("epoch", None, "Checkpoint to evaluate (number of finished epochs); default latest.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "PhysioNet folder, if it moved since training.")
_ALLOW_CHANGED = flags.DEFINE_boolean(
    "allow_changed_model_source", False,
    "Evaluate although the file of an external network (PATH.py:Class) changed since training.")

define_distributed_flags()


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.evaluation import evaluate_workdir
    from ecg_jax.results import print_rows

    rows = evaluate_workdir(_WORKDIR.value, epoch=_EPOCH.value, data_dir=_DATA_DIR.value,
                            allow_changed_model_source=_ALLOW_CHANGED.value)
    if jax.process_index() == 0:  # every process has the rows; one prints them
        print_rows(rows)
