"""Train every seed (and dataset) of a config in one compiled program, then evaluate.

  ecg-jax train --config dancer:smoke --workdir /tmp/w
  ecg-jax train --config unet --workdir runs/unet \\
      --config.seeds=3 --config.noise_types=emb --config.snr_levels=-4,0
  ecg-jax train --config my_config.py:smoke --workdir runs/mine    # any config file
  ecg-jax train --workdir runs/unet      # resume an interrupted run
  ecg-jax train --config denoiser:fresh --workdir runs/fresh   # the shipped denoiser's recipe (fresh noise)
  ecg-jax train --config unet:smoke --config.model=my_net.py:MyNet --workdir runs/mine   # your own network
  ecg-jax train --config final --config.model=/abs/my_net.py:MyNet --config.model_kwargs.features=32 --workdir W
  # two processes (e.g. two hosts, or two on one machine), same command, same workdir:
  ecg-jax train --config ... --workdir W --coordinator_address=HOST:PORT --num_processes=2 --process_id=0
  ecg-jax train --config ... --workdir W --coordinator_address=HOST:PORT --num_processes=2 --process_id=1

With `--workdir` alone the run resumes from `<workdir>/config.json` and the
last checkpoint. Set the PhysioNet folder with --config.data.data_dir=DIR or
$ECG_JAX_DATA; without one the built-in synthetic source is used (and said so).
"""

import json
import os
import sys

import jax
from absl import flags

from ecg_jax.cli import define_config_file, define_distributed_flags
from ecg_jax.config_utils import check_trainable, load_config_json, resolve_config
from ecg_jax.errors import ConfigError
from ecg_jax.network_flags import accept_model_options, adopt_model_options

DISTRIBUTED = True

_CONFIG = define_config_file(None, "Experiment config: a built-in name[:arg] (dancer:smoke) or a file "
                             "(configs/<network>.py[:smoke]).", lock_config=True)
accept_model_options(_CONFIG)   # --config.model_kwargs.X=V for any option X of the network
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder: checkpoints, logs, results.", required=True)
_ALLOW_CHANGED = flags.DEFINE_boolean(
    "allow_changed_model_source", False,
    "Resume although the file of an external --config.model (PATH.py:Class) changed since the workdir was made.")

_SET_ASIDE = flags.DEFINE_boolean(
    "set_aside_damaged_checkpoints", False,
    "Go on when two or more checkpoints in a row cannot be read: move them all to checkpoints/damaged/ and "
    "train again from the newest intact one (or from the start). Without it such a run stops, every time.")

define_distributed_flags()


def main(argv):
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    config = _CONFIG.value
    saved = os.path.join(_WORKDIR.value, "config.json")
    if config is None:
        if not os.path.exists(saved):
            raise ConfigError(f"no --config given and no {saved} to resume from; "
                              "pass --config <network> (e.g. unet) or --config configs/<network>.py")
        config = load_config_json(saved)
        if "fresh" not in config:
            try:
                check_trainable(resolve_config(config))
            except ConfigError as e:
                raise ConfigError(f"{saved}: {e}") from None
    if "fresh" in config:
        # The shipped denoiser's recipe (configs/denoiser.py:fresh): noise drawn anew
        # for every batch inside the compiled step; writes weights with their card.
        from ecg_jax.train import fresh_noise

        result = fresh_noise.train(config, _WORKDIR.value)
        print(json.dumps({k: v for k, v in result.items() if k != "history"}))
        return
    if _CONFIG.value is not None:
        # --config.model=OTHER: the file's options that OTHER has no field for are left out, said on stderr
        config, note = adopt_model_options(config, flags.FLAGS[_CONFIG.name].override_values)
        if note and jax.process_index() == 0:
            print(note, file=sys.stderr, flush=True)
        check_trainable(resolve_config(config))  # every field, before the training code loads or anything is written

    # lazy: the training code loads only after the config is checked, so --help and config errors are fast
    from ecg_jax.results import print_rows
    from ecg_jax.train.loop import train_and_evaluate

    rows = train_and_evaluate(config, _WORKDIR.value, allow_changed_model_source=_ALLOW_CHANGED.value,
                              set_aside_damaged=_SET_ASIDE.value)
    if jax.process_index() == 0:  # every process has the rows; one prints them
        print_rows(rows)
