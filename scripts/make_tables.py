"""Merge results.jsonl files into the benchmark tables and figures.

  python scripts/make_tables.py --results runs/baselines,runs/unet --out tables/

--results takes results.jsonl files or directories holding one (comma-separated
and/or repeated); later ones win for duplicate runs. Writes into --out:
  tables.html, tables.md, runs.csv    the tables and every per-run number
  snr_curves.{png,svg}                output vs input SNR (one file per
                                      split/source when the rows mix them:
                                      snr_curves_<split>_<source>.{png,svg})
  example_<noise>_<snr>dB.{png,svg}   only when a results directory holds an
                                      examples.npz (see figures.load_examples);
                                      unreadable files are skipped with a warning
and prints the Markdown tables.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from ecg_jax import figures, results, tables  # noqa: E402
from ecg_jax.cli import run_main  # noqa: E402
from ecg_jax.config_utils import as_list  # noqa: E402
from ecg_jax.errors import ConfigError  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("results", [], "results.jsonl files or directories (comma-separated or repeated)")
flags.DEFINE_string("out", "", "output directory for tables and figures")


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def _example_figures(result_paths: list[str], out_dir: str) -> list[str]:
    examples = []
    for p in result_paths:
        folder = p if os.path.isdir(p) else os.path.dirname(os.path.abspath(p))
        npz = os.path.join(folder, "examples.npz")
        if not os.path.isfile(npz):
            continue
        # A training workdir's examples.npz does not name its method: take it
        # from the folder's results when they hold exactly one method.
        methods = {r["method"] for r in results.read_rows([p])}
        method = methods.pop() if len(methods) == 1 else None
        examples += figures.load_examples(npz, method=method, warn=_warn)
    written = []
    used_stems: set[str] = set()
    for ex in figures.merge_examples(examples):
        stem = f"example_{ex.noise_type}_{ex.snr_db:g}dB"
        k = 2
        while stem in used_stems:
            stem, k = f"example_{ex.noise_type}_{ex.snr_db:g}dB_{k}", k + 1
        used_stems.add(stem)
        title = f"One test window, {ex.noise_type} noise at {ex.snr_db:g} dB input SNR"
        written += figures.plot_denoising_example(ex.clean, ex.noisy, ex.outputs, ex.fs, title,
                                                  os.path.join(out_dir, stem))
    return written


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    paths = [str(p) for p in as_list(FLAGS.results)]
    if not paths:
        raise ConfigError("--results is required (results.jsonl files or directories)")
    if not FLAGS.out:
        raise ConfigError("--out is required (output directory)")
    rows = results.read_rows(paths)
    if not rows:
        raise ConfigError(f"no result rows in {', '.join(paths)}")
    os.makedirs(FLAGS.out, exist_ok=True)

    written = list(tables.write_tables(rows, FLAGS.out).values())
    groups = tables.group_by_protocol(rows)
    for (split, source), group in groups.items():
        stem = "snr_curves" if len(groups) == 1 else f"snr_curves_{split}_{source}"
        written += figures.plot_snr_curves(group, os.path.join(FLAGS.out, stem))
    written += _example_figures(paths, FLAGS.out)

    with open(os.path.join(FLAGS.out, "tables.md")) as f:
        print(f.read(), end="")
    print(f"wrote {len(written)} files to {FLAGS.out}: {', '.join(os.path.basename(w) for w in written)}",
          file=sys.stderr)


if __name__ == "__main__":
    app.run(run_main(main))
