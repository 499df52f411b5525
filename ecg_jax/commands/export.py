"""Export a training run as one portable weights file (.npz) plus a JSON model card next to it.

  ecg-jax export --workdir runs/dancer --output weights/dancer.npz            # every member
  ecg-jax export --workdir runs/dancer --output d0.npz --member 0 --epoch 40  # one member
  ecg-jax export --workdir runs/grid --output emb0.npz --dataset emb@0       # one dataset's seeds

The card (same stem, .json) lists the network, parameter count, options,
normalisation, training data and recipe, and the exported denoiser's mean
output SNR and RMSE on the run's test windows for each (noise type, SNR).
"""

import json

from absl import flags

from ecg_jax.errors import ConfigError
from ecg_jax.workdir import check_output_file

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (config.json, checkpoints/).", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Weights file to write (.npz); the card goes next to it.",
                              required=True)
_MEMBER = flags.DEFINE_string("member", "all", "Member index, or 'all' (a seed ensemble).")
_DATASET = flags.DEFINE_string("dataset", None, "NOISE@SNR (e.g. emb@0): only the members trained on that dataset; "
                               "needed with --member all when the run's members span several datasets.")
_EPOCH = flags.DEFINE_integer("epoch", None, "Checkpoint after this epoch; default the latest.")
_SCORE = flags.DEFINE_bool("score", True, "Score the exported denoiser on the run's test windows.")
_SCORE_MEMBERS = flags.DEFINE_bool("score_members", False, "Also score each member on its own.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
_ALLOW_CHANGED = flags.DEFINE_bool(
    "allow_changed_model_source", False,
    "Export your own network (PATH.py:Class) although its file changed since the workdir was trained.")
_NOTE = flags.DEFINE_string("note", "", "A free-text note for the model card (e.g. why this many epochs).")


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    check_output_file(_OUTPUT.value, "--output")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax.denoise import export_workdir

    card = export_workdir(_WORKDIR.value, _OUTPUT.value, member=_MEMBER.value, epoch=_EPOCH.value,
                          score=_SCORE.value, score_members=_SCORE_MEMBERS.value, overwrite=_OVERWRITE.value,
                          note=_NOTE.value, dataset=_DATASET.value,
                          allow_changed_model_source=_ALLOW_CHANGED.value)
    print(f"wrote {_OUTPUT.value} ({card['members_count']} member(s), {card['parameter_count']:,} parameters each)")
    for row in card.get("scores", {}).get("rows", []):
        print(json.dumps(row))
