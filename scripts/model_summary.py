"""Print one row per network: parameters (vs models.md), FLOPs, output shape, forward time.

    python scripts/model_summary.py
    python scripts/model_summary.py --models=unet,ciadnet --batch=64 --length=256

What each column means: ecg_jax/models/summary.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.config_utils import as_list  # noqa: E402
from ecg_jax.errors import ConfigError  # noqa: E402
from ecg_jax.models import MODEL_NAMES  # noqa: E402
from ecg_jax.models.summary import summarise_models  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("models", ",".join(MODEL_NAMES), "Comma-separated model names.")
flags.DEFINE_integer("batch", 64, "Windows per forward pass (FLOPs are reported per window).")
flags.DEFINE_integer("length", 256, "Window length in samples (divisible by 16).")
flags.DEFINE_integer("repeats", 20, "Timed forward passes after warm-up.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    print(summarise_models(as_list(FLAGS.models), FLAGS.batch, FLAGS.length, FLAGS.repeats))


if __name__ == "__main__":
    app.run(run_main(main))
