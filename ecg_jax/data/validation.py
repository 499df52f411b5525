"""windows -> (training, validation) windows: whole training records held out to choose a sweep's point.

`data.validation_records` training records (inter-patient: every window of a
held-out record leaves training) become the validation split. They are drawn
from the training records with a generator seeded by `data.data_seed`, so the
split is a function of the config alone, and recorded in the data card. The
test windows are untouched: a sweep is chosen on validation and reported on
test. Normalisation statistics are those of the remaining training windows
(PreparedData computes them from its training rows), as training uses them.

Validation windows keep their training-region noise segments (paired row by
row, as in training): the test noise stays unseen until the test.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ecg_jax.data.prepared import PreparedData, WindowSet
from ecg_jax.errors import ConfigError
from ecg_jax.sweep_points import sweep_axes, validation_record_count

# Mixed into data_seed so the validation draw is not any other draw of the same seed.
_VALIDATION_STREAM = 0x76616C


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The training data without the validation records, and the validation windows (None: no split)."""
    prepared: PreparedData
    validation: WindowSet | None
    records: tuple[str, ...] = ()

    def card_fields(self) -> dict:
        """What the data card records of the split (nothing without one)."""
        if self.validation is None:
            return {}
        return {"validation_records": list(self.records), "n_validation": len(self.validation)}


def training_records(prepared: PreparedData) -> list[str]:
    """The records that have training windows, sorted."""
    return sorted(set(np.asarray(prepared.window_records[:prepared.n_train]).tolist()))


def hold_out_validation(prepared: PreparedData, config) -> HeldOut:
    """`prepared` with `config.data.validation_records` training records moved into a validation split."""
    swept = "train" in config and bool(sweep_axes(config))
    names = training_records(prepared)
    n = validation_record_count(config.data.get("validation_records", "auto"), swept, len(names))
    if n == 0:
        return HeldOut(prepared, None)
    if n >= len(names):
        raise ConfigError(f"data.validation_records={n} would hold out every one of the {len(names)} training "
                          f"records; use at most {len(names) - 1}")
    rng = np.random.default_rng([int(config.data.data_seed), _VALIDATION_STREAM])
    held = tuple(sorted(rng.choice(np.asarray(names), size=n, replace=False).tolist()))
    train_rows = np.arange(prepared.n_train)
    in_held = np.isin(np.asarray(prepared.window_records[:prepared.n_train]), held)
    keep = np.concatenate([train_rows[~in_held], np.arange(prepared.n_train, prepared.n_windows)])
    reduced = dataclasses.replace(
        prepared, clean=prepared.clean[keep], noise=prepared.noise.rows(keep),
        window_records=prepared.window_records[keep], window_starts=prepared.window_starts[keep],
        n_train=int((~in_held).sum()),
        train_records=tuple(r for r in prepared.train_records if r not in held))
    return HeldOut(reduced, prepared.rows(train_rows[in_held]), held)
