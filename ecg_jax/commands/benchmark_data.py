"""Time data preparation for the whole 20-dataset grid, cold and warm.

  ecg-jax benchmark-data [--config=default] [--config.data.data_dir=DIR]

Cold: an empty temporary cache, so records are read from the WFDB files,
checksummed, windowed and cut, the cache is written, then all 20 noisy
datasets, their normalisation statistics and the data card are computed
(including JAX compilation). Warm: the same again in the same process, now
served by the cache. Targets on a 2-core CPU: < 30 s cold, < 2 s warm.
"""

import os
import tempfile
import time

from ecg_jax import data as datasets
from ecg_jax.cli import define_config_file
from ecg_jax.config_utils import resolve_config

_CONFIG = define_config_file("default", "Experiment config: a built-in name[:arg] or a file.")


def prepare_grid(config) -> tuple[datasets.PreparedData, dict, float]:
    """Prepared data + every dataset's statistics + the data card; returns the seconds taken."""
    start = time.perf_counter()
    prepared = datasets.prepare_data(config)
    card = datasets.data_card(prepared, config)
    return prepared, card, time.perf_counter() - start


def main(argv: list[str]) -> None:
    del argv
    config = resolve_config(_CONFIG.value)
    with tempfile.TemporaryDirectory(prefix="ecg_jax_bench_cache_") as cache_dir:
        config.data.cache_dir = cache_dir
        cold, card, cold_s = prepare_grid(config)
        warm, _, warm_s = prepare_grid(config)
    assert not cold.cache_hit and warm.cache_hit, "expected a cache miss, then a hit"
    print(f"source: {card['source']}; {card['n_windows']} windows ({card['n_train']} train / "
          f"{card['n_test']} test) from {len(card['records'])} records; "
          f"{len(card['datasets'])} datasets; {os.cpu_count()} CPU core(s)")
    print(f"cold (WFDB files, empty cache, incl. JIT compile): {cold_s:6.2f} s  (target < 30 s)")
    print(f"warm (cache hit, same process):                   {warm_s:6.2f} s  (target < 2 s)")
