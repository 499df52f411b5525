"""Merge results.jsonl files into the benchmark tables and figures.

  ecg-jax tables --results runs/baselines,runs/unet --out tables/

--results takes results.jsonl files or directories holding one (comma-separated
and/or repeated); later ones win for duplicate rows. Each run is shown at its
final epoch (the largest `epochs` among its rows); --epoch N shows the network
rows scored at epoch N instead (e.g. after `ecg-jax evaluate --epoch N`;
baselines are always shown). Diverged runs are left out of mean ± std and
counted in the captions. Writes into --out:
  tables.html, tables.md, runs.csv    the tables and the numbers of every run
                                      they use (runs.csv: diverged ones too,
                                      flagged; one column per field, e.g.
                                      input_snr_db, output_snr_db, rmse_mv)
  snr_curves.{png,svg}                output vs input SNR (one file per
                                      split/source/revision when the rows
                                      mix them: snr_curves_<split>_<source>_
                                      <revision>.{png,svg})
  example_<noise>_<snr>dB.{png,svg}   only when a results directory holds an
                                      examples.npz (see report.examples);
                                      unreadable files are skipped with a warning
and prints the Markdown tables.

--compare published adds, under every row that has published numbers, the
published row(s) (labelled with their README and protocol revision: network
rows "paper", FFT/DWT rows "first") and our difference, in tables.md and
tables.html. The numbers come from --published (default
../shared/spec/published.json beside a clone of the repository).
"""

from __future__ import annotations

import os
import sys

from absl import flags

from ecg_jax import report
from ecg_jax.config_utils import as_list
from ecg_jax.errors import ConfigError
from ecg_jax.results import read_rows
from ecg_jax.workdir import check_output_folder

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("results", [], "results.jsonl files or directories (comma-separated or repeated)")
flags.DEFINE_string("out", "", "output directory for tables and figures (default: a `tables` folder beside the "
                    "first --results)")
flags.DEFINE_integer("epoch", None, "use the network rows scored at this epoch (default: each run's final epoch)")
flags.DEFINE_enum("compare", None, ["published"], "add published numbers and our differences to the tables")
flags.DEFINE_string("published", report.DEFAULT_PUBLISHED, "published.json for --compare published")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    paths = [str(p) for p in as_list(FLAGS.results)]
    if not paths:
        raise ConfigError("--results is required (results.jsonl files or directories)")
    if not FLAGS.out:   # beside the first results: a workdir's tables go into W/tables
        first = paths[0]
        FLAGS.out = os.path.join(first if os.path.isdir(first) else os.path.dirname(os.path.abspath(first)), "tables")
    if FLAGS.epoch is not None and FLAGS.epoch < 0:
        raise ConfigError(f"--epoch must be a number of finished epochs (>= 0), got {FLAGS.epoch}")
    check_output_folder(FLAGS.out, "--out")
    published = report.load_published(os.path.normpath(FLAGS.published)) if FLAGS.compare else None
    markdown, written = report.write_report(paths, FLAGS.out, epoch=FLAGS.epoch)
    if published is not None:
        # the same tables again, with the published rows under ours
        md_path = report.write_tables(read_rows(paths), FLAGS.out, epoch=FLAGS.epoch, published=published)["markdown"]
        with open(md_path) as f:
            markdown = f.read()
    print(markdown, end="")
    print(f"wrote {len(written)} files to {FLAGS.out}: {', '.join(os.path.basename(w) for w in written)}",
          file=sys.stderr)
