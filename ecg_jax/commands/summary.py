"""Print one row per network: parameters (vs models.md), FLOPs, output shape, forward time.

    ecg-jax summary
    ecg-jax summary --models=unet,ciadnet --batch=64 --length=256
    ecg-jax summary --models=examples/my_net.py:MyNet      # your own network (no models.md count)

What each column means: ecg_jax/models/summary.py.
"""

from __future__ import annotations

from absl import flags

from ecg_jax.config_utils import as_list
from ecg_jax.errors import ConfigError
from ecg_jax.models import MODEL_NAMES, UNAVAILABLE_MODELS
from ecg_jax.models.summary import summarise_models

FLAGS = flags.FLAGS
flags.DEFINE_string("models", ",".join(MODEL_NAMES + tuple(UNAVAILABLE_MODELS)),
                    "Comma-separated model names (one not built yet gets a row saying so); your own network as "
                    "PATH.py:Class, module.path:Class or an ecg_jax.models entry point name.")
flags.DEFINE_integer("batch", 64, "Windows per forward pass (FLOPs are reported per window).")
flags.DEFINE_integer("length", 256, "Window length in samples (divisible by 16).")
flags.DEFINE_integer("repeats", 20, "Timed forward passes after warm-up.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    print(summarise_models(as_list(FLAGS.models), FLAGS.batch, FLAGS.length, FLAGS.repeats))
