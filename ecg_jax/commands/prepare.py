"""Prepare the data for a config; write <workdir>/data_card.json and/or export the arrays.

  ecg-jax prepare --workdir W [--config=default[:smoke]] [--config.data.data_dir=../shared/data]
  ecg-jax prepare --config final --export final.npz

--export writes `clean` and `{noise}_{snr}` float32 (N, 256, 2) arrays in the
protocol's example order, `train_index`, `test_index` and the data card (with
the revision) into one .npz for other frameworks (ecg_jax/data/export.py).

Prints the source (loudly when it is the built-in SYNTHETIC one), the sizes,
the achieved input SNR of every dataset, the time taken and whether the
prepared-data cache was hit.
"""

from absl import flags

from ecg_jax.cli import define_config_file
from ecg_jax.data import prepare_and_write_data_card
from ecg_jax.errors import EcgJaxError
from ecg_jax.workdir import check_output_file, check_output_folder

_CONFIG = define_config_file("default", "Experiment config: a built-in name[:arg] or a file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for data_card.json.")
_EXPORT = flags.DEFINE_string("export", None, "Write the prepared arrays to this .npz (never overwritten).")


def main(argv: list[str]) -> None:
    del argv
    if not _WORKDIR.value and not _EXPORT.value:
        raise EcgJaxError("give --workdir (for data_card.json) and/or --export PATH.npz")
    if _EXPORT.value and not _EXPORT.value.endswith(".npz"):
        raise EcgJaxError(f"--export {_EXPORT.value}: the file name must end in .npz")
    if _WORKDIR.value:
        check_output_folder(_WORKDIR.value, "--workdir")
    if _EXPORT.value:
        check_output_file(_EXPORT.value, "--export")
    lines, paths = prepare_and_write_data_card(_CONFIG.value, _WORKDIR.value, _EXPORT.value)
    for line in lines:
        print(line)
    for path in paths:
        print(f"wrote {path}")
