"""One command for the whole benchmark: baselines, every network, tables and figures.

  ECG_JAX_DATA=../shared/data ecg-jax reproduce --config paper --workdir R
  ECG_JAX_DATA=../shared/data ecg-jax reproduce --config paper:smoke --workdir /tmp/repro
  ecg-jax reproduce --config paper --workdir R --config.networks=unet,dancer
  ecg-jax reproduce --config final:all --workdir R --extra_models=/abs/my_net.py:MyNet   # + your own network
  # several processes (each with its own devices), e.g. two on one machine:
  ecg-jax reproduce ... --coordinator_address=127.0.0.1:9876 --num_processes=2 --process_id=0 &
  ecg-jax reproduce ... --coordinator_address=127.0.0.1:9876 --num_processes=2 --process_id=1

Stages, outputs and resumption: ecg_jax/reproduce.py.
"""

import json
import os

from absl import flags

from ecg_jax.cli import define_config_file, define_distributed_flags
from ecg_jax.errors import ConfigError
from ecg_jax.workdir import check_output_folder

DISTRIBUTED = True

_CONFIG = define_config_file("paper", "Paper config: paper[:smoke] (built in) or a file (configs/paper.py[:smoke]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output root: baselines/, one folder per experiment, tables/.",
                               required=True)
_COMPARE = flags.DEFINE_enum("compare", None, ["published"],
                             "put the published numbers and our differences under our rows in the tables")
_EXTRA_MODELS = flags.DEFINE_string(
    "extra_models", "", "Your own networks to add to the run, comma-separated: PATH.py:Class, module.path:Class "
    "or an ecg_jax.models entry point name; each trains as experiment <its class name in lower case>.")
_ALLOW_CHANGED = flags.DEFINE_boolean(
    "allow_changed_model_source", False,
    "Go on although the file of an --extra_models network changed since its workdir was trained.")
_PUBLISHED = flags.DEFINE_string("published", None, "published.json for --compare published "
                                 "(default: ../shared/spec/published.json beside a clone)")
define_distributed_flags()


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    check_output_folder(_WORKDIR.value, "--workdir")
    # lazy: the heavy code loads after the flags are parsed, so --help and flag errors are fast
    from ecg_jax import report
    from ecg_jax.reproduce import reproduce

    published = None
    if _COMPARE.value:  # read before any training, so a bad path fails at once
        published = report.load_published(os.path.normpath(_PUBLISHED.value or report.DEFAULT_PUBLISHED))
    paths = reproduce(_CONFIG.value, _WORKDIR.value, published=published,
                      extra_models=[m.strip() for m in _EXTRA_MODELS.value.split(",") if m.strip()],
                      allow_changed_model_source=_ALLOW_CHANGED.value)
    if not paths:  # not process 0 of a multi-process run
        return
    with open(paths["markdown"]) as f:
        print(f.read(), end="")
    with open(paths["timings"]) as f:
        timed = json.load(f)
    print("\nWall time per stage (s):")
    for name, seconds in timed["seconds"].items():
        print(f"  {name:<18} {seconds:>8.1f}")
    note = "  (SYNTHETIC data: not PhysioNet)" if timed["source"] == "synthetic" else ""
    print(f"Data source: {timed['source']}{note}. Tables and figures in {os.path.dirname(paths['markdown'])}")
