"""Reading and writing ECG recordings by file extension, a block of samples at a time.

Readers give float32 samples in mV, shape (samples, leads), for any slice, so
a 24-hour recording never has to be held in memory as float64:

  .csv   one column per lead, optional header row of lead names; values in mV; needs fs
  .npy   (samples,) or (samples, leads), any numeric dtype, in mV; needs fs (memory-mapped)
  .hea   WFDB record (the .dat next to it): fs, lead names and units from the header
  .edf   EDF/EDF+ (edfio): fs, labels and physical units from the file; every
         ordinary signal must share one sampling rate

µV and V are converted to mV on reading and back on writing; other unit
strings (or none) are taken as mV. Writers take mV blocks in order and
write them to a temporary file that is renamed when complete:

  .csv   mV, "%.6f", header row of lead names when the input had names
  .npy   float32 mV (an np.lib.format.open_memmap file, filled block by block)
  .hea   WFDB format 16 (.hea + .dat), same rate, lead names and units as the
         input; the input's ADC gain and baseline when it was WFDB, else
         1000 units per mV (1 µV steps). NaN is written as WFDB's invalid sample.

A .npy or WFDB output whose size exceeds the free space of its folder is refused
before it is created (`check_space`; a .npy is then reserved on disk, since a
memory map written past a full disk is a SIGBUS); a failed write removes every
temporary file, even when closing it fails too. Input rates outside
`resampling.MIN_FS..MAX_FS` are refused before the file is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tempfile
from typing import Callable

import numpy as np

from ecg_jax.atomic import temp_beside
from ecg_jax.denoise.resampling import check_fs
from ecg_jax.errors import DenoiseInputError, one_line
from ecg_jax.interrupts import DiskFullError, deferred, free_bytes, is_disk_full, size_text

INPUT_EXTENSIONS = (".csv", ".npy", ".hea", ".edf")
OUTPUT_EXTENSIONS = (".csv", ".npy", ".hea")
NEEDS_FS = (".csv", ".npy")

_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
_WFDB_INVALID = -32768   # format 16's "no sample" value


def to_mv_factor(unit: str | None) -> float:
    """Multiply a value in `unit` by this to get mV (unknown or empty units count as mV)."""
    return _TO_MV.get((unit or "mV").strip().lower(), 1.0)


@dataclasses.dataclass
class Recording:
    """A readable recording: `read(start, stop)` -> float32 (stop - start, leads) in mV."""
    path: str
    fs: float | None
    n_samples: int
    n_leads: int
    read_mv: Callable[[int, int], np.ndarray]
    lead_names: list[str] | None = None
    units: list[str] | None = None           # units of the file (mV when it has none)
    wfdb_gain: list[float] | None = None      # ADC gain and baseline of a WFDB input
    wfdb_baseline: list[int] | None = None
    array_units: str | None = None            # --units of a .csv/.npy input: its outputs are written in them

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) in mV; any failure of the underlying reader is a one-line DenoiseInputError."""
        try:
            return np.asarray(self.read_mv(start, stop), np.float32).reshape(stop - start, self.n_leads)
        except DenoiseInputError:
            raise
        except Exception as e:  # noqa: BLE001 - a file that cannot be read is bad input, one line
            raise DenoiseInputError(f"cannot read samples {start}..{stop} of {self.path}: {one_line(e)}") from None

    @property
    def output_units(self) -> list[str]:
        return list(self.units or ["mV"] * self.n_leads)


def extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def array_recording(x: np.ndarray, fs: float | None, path: str = "<array>") -> Recording:
    """A (samples,) or (samples, leads) array in mV as a Recording (no copy for a memmap)."""
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DenoiseInputError(f"{path}: expected (samples,) or (samples, leads), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DenoiseInputError(f"{path}: expected real numbers, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        what = "no leads" if x.shape[1] == 0 else "no samples" + (" (a header row only)" if path.lower().endswith(
            ".csv") else "")
        raise DenoiseInputError(f"{path} holds {what}; give a recording with samples of at least one lead")
    return Recording(path, fs, x.shape[0], x.shape[1], lambda a, b: x[a:b])


ARRAY_UNITS = ("uV", "mV", "V")   # --units of a .csv/.npy input


def open_recording(path: str, fs: float | None = None, units: str | None = None) -> Recording:
    """Open a recording by extension; `fs` is required for .csv and .npy. For .hea and .edf
    the file states the rate: an `fs` that differs from it is refused (an equal one is fine).
    `units` ("uV", "mV" or "V"; default mV) are the values' units of a .csv/.npy file; a .hea or
    .edf file states its own, so `units` is refused there."""
    ext = extension(path)
    if units is not None:
        if units.lower().replace("µ", "u").replace("μ", "u") not in [u.lower() for u in ARRAY_UNITS]:
            raise DenoiseInputError(f"--units must be one of {', '.join(ARRAY_UNITS)}, got {units!r}")
        if ext not in NEEDS_FS:
            raise DenoiseInputError(f"{path}: a {ext} file states its own units; drop --units "
                                    f"(it is for .csv and .npy files)")
    if ext not in INPUT_EXTENSIONS:
        raise DenoiseInputError(f"{path}: unknown input extension {ext or '(none)'!r}; "
                                f"valid: {', '.join(INPUT_EXTENSIONS)}")
    if not os.path.exists(path):
        raise DenoiseInputError(f"input file {path} does not exist")
    if ext in NEEDS_FS and not fs:
        raise DenoiseInputError(f"{path}: a {ext} file has no sampling rate; give it with --fs HZ")
    if fs is not None and not (np.isfinite(fs) and fs > 0):
        raise DenoiseInputError(f"sampling rate must be a positive number, got {fs}")
    if fs is not None:
        check_fs(fs)   # before the file is read: a CSV is read whole
    try:
        if ext in NEEDS_FS:
            recording = _read_csv(path, fs) if ext == ".csv" else _read_npy(path, fs)
            return recording if units is None else in_units(recording, units)
        recording = _read_wfdb(path) if ext == ".hea" else _read_edf(path)
    except DenoiseInputError:
        raise
    except Exception as e:  # noqa: BLE001 - a file the library cannot parse is bad input, one line
        raise DenoiseInputError(f"cannot read {path}: {one_line(e)}") from None
    if fs is not None and not math.isclose(float(fs), recording.fs, rel_tol=1e-9, abs_tol=1e-9):
        raise DenoiseInputError(f"{path}: --fs {fs:g} differs from the file's own sampling rate, "
                                f"{recording.fs:g} Hz; drop --fs (a {ext} file states its rate)")
    check_fs(recording.fs, path)
    return recording


def in_units(recording: Recording, units: str) -> Recording:
    """An array recording whose values are in `units`: read in mV, written back in `units`."""
    factor = to_mv_factor(units)
    read = recording.read_mv
    return dataclasses.replace(recording, read_mv=lambda a, b: np.asarray(read(a, b), np.float64) * factor,
                               units=[units] * recording.n_leads, array_units=units)


def _na_strings() -> frozenset[str]:
    """The strings pandas reads as NaN by default (NA, N/A, null, None, nan, ...)."""
    try:
        from pandas._libs.parsers import STR_NA_VALUES

        return frozenset(STR_NA_VALUES)
    except ImportError:   # private in pandas; the list as of pandas 2
        return frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                          "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def _has_header(path: str) -> bool:
    """A first row with any cell that is neither a number nor one of pandas' NA strings is a header."""
    with open(path) as f:
        first = f.readline()
    na = _na_strings()
    for cell in (c.strip() for c in first.strip().split(",")):
        if cell in na:
            continue
        try:
            float(cell)
        except ValueError:
            return True
    return False


def _read_csv(path: str, fs: float) -> Recording:
    import pandas as pd

    header = _has_header(path)
    # float32 from the parser: no float64 copy of a long recording.
    table = pd.read_csv(path, header=0 if header else None, dtype=np.float32, skipinitialspace=True)
    x = np.ascontiguousarray(table.to_numpy(np.float32))
    rec = array_recording(x, fs, path)
    if header:
        rec.lead_names = [str(c).strip() for c in table.columns]
    return rec


NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: str, fs: float) -> Recording:
    with open(path, "rb") as f:
        magic = f.read(len(NPY_MAGIC))
    if magic != NPY_MAGIC:   # np.load would guess a pickle and say so: wrong for zeros or random bytes
        raise DenoiseInputError(f"{path} is not a NumPy .npy file (no .npy header{', empty' if not magic else ''}); "
                                f"save the recording with numpy.save, or give a .csv")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        if "pickle" not in str(e):
            raise
        raise DenoiseInputError(f"{path} holds Python objects, not numbers; save a numeric array "
                                f"(samples x leads) with numpy.save") from None
    if x.ndim == 2 and x.shape[1] > x.shape[0]:
        raise DenoiseInputError(f"{path}: expected samples x leads, got shape {x.shape} (more leads than "
                                f"samples); save the transpose")
    return array_recording(x, fs, path)


def _record_name(path: str) -> str:
    return os.path.splitext(path)[0]


def _read_wfdb(path: str) -> Recording:
    import wfdb

    name = _record_name(path)
    header = wfdb.rdheader(name)
    if not header.sig_len or not header.n_sig:
        raise DenoiseInputError(f"{path}: the header names no samples or no signals")
    _check_signal_files(path, header)
    units = [u or "mV" for u in (header.units or ["mV"] * header.n_sig)]
    factors = np.asarray([to_mv_factor(u) for u in units], np.float64)

    def read(a: int, b: int) -> np.ndarray:
        signal = wfdb.rdrecord(name, sampfrom=a, sampto=b, physical=True).p_signal
        return signal * factors

    return Recording(path, float(header.fs), int(header.sig_len), int(header.n_sig), read,
                     lead_names=list(header.sig_name), units=units,
                     wfdb_gain=[float(g) for g in header.adc_gain],
                     wfdb_baseline=[int(b) for b in header.baseline])


def _check_signal_files(path: str, header) -> None:
    """Each signal file of a WFDB header exists and is at least as long as the header implies."""
    from wfdb.io._signal import BYTES_PER_SAMPLE

    files = getattr(header, "file_name", None)
    if not files:   # a multi-segment record: its segments are checked when wfdb reads them
        return
    folder = os.path.dirname(os.path.abspath(path))
    spf = list(header.samps_per_frame or [1] * header.n_sig)
    offsets = list(header.byte_offset or [None] * header.n_sig)
    need: dict[str, float] = {}
    for i, (name, fmt) in enumerate(zip(files, header.fmt, strict=True)):
        width = BYTES_PER_SAMPLE.get(str(fmt))
        if not name or name == "~" or not width:   # no file, or a compressed format: size unknown
            continue
        need[name] = need.get(name, float(offsets[i] or 0)) + header.sig_len * (spf[i] or 1) * width
    for name, size in need.items():
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise DenoiseInputError(f"{path}: its signal file {name} is missing (looked for {file})")
        have = os.path.getsize(file)
        if have < math.floor(size):
            raise DenoiseInputError(f"{path}: its signal file {name} is truncated: {have} bytes, the header "
                                    f"implies {math.floor(size)} ({header.sig_len} samples)")


def _read_edf(path: str) -> Recording:
    import edfio

    with open(path, "rb") as f:
        header = f.read(256)
    if len(header) < 256:
        raise DenoiseInputError(f"{path} is not an EDF file (its header is {len(header)} of 256 bytes); "
                                f"give a complete .edf file")
    try:
        n_signals = int(header[252:256].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise DenoiseInputError(f"{path} is not an EDF file (no number of signals in its header); "
                                f"give a valid .edf file") from None
    if n_signals <= 0:   # edfio divides by it
        raise DenoiseInputError(f"{path}: the EDF file holds no signals (its header says {n_signals})")
    edf = edfio.read_edf(path, lazy_load_data=True)
    signals = list(edf.signals)
    if not signals:
        raise DenoiseInputError(f"{path}: the EDF file holds no signals")
    rates = sorted({float(s.sampling_frequency) for s in signals})
    if len(rates) > 1:
        raise DenoiseInputError(f"{path}: the EDF signals have different sampling rates ({rates} Hz); "
                                f"export the ECG leads at one rate")
    fs = rates[0]
    n = min(edf.num_data_records * s.samples_per_data_record for s in signals)
    units = [s.physical_dimension or "mV" for s in signals]
    factors = [to_mv_factor(u) for u in units]

    def read(a: int, b: int) -> np.ndarray:
        return np.stack([s.get_data_slice(a / fs, b / fs) * f for s, f in zip(signals, factors, strict=True)], axis=1)

    return Recording(path, fs, int(n), len(signals), read, lead_names=[s.label for s in signals], units=units)


# ------------------------------------------------------------------ writers

class Writer:
    """Takes consecutive mV blocks; `commit()` renames the temporary file(s) into place.

    A failure anywhere (in a subclass's __init__, a write, the close of `finish`, the rename)
    removes every temporary file, also when closing the file fails again (a full disk at the
    last flush): `discard` closes in a try and removes in its finally.
    """

    def __init__(self, path: str, final_paths: list[str]):
        self.path = path
        self._moves: list[tuple[str, str]] = []
        try:
            for final in final_paths:
                self._moves.append((temp_beside(final, ".denoise-"), final))
        except BaseException:
            self._remove_temporaries()
            raise

    @property
    def tmp(self) -> str:
        return self._moves[0][0]

    def write(self, block_mv: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Flush and close before the rename."""

    def close(self) -> None:
        """Close the temporary file(s) without committing; may raise (a full disk at the last flush)."""

    def commit(self) -> None:
        self.finish()
        done = []
        with deferred():   # Ctrl-C between the renames of a WFDB record's two files waits for both
            try:
                for tmp, final in self._moves:
                    os.replace(tmp, final)
                    done.append(final)
            except BaseException:
                for final in done:   # half a WFDB record (.dat without .hea) is no output
                    if os.path.exists(final):
                        os.remove(final)
                raise

    def discard(self) -> None:
        """Close (errors of the close are not reported: the write's own error is) and remove the
        temporary files, whatever the close does."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- a close failing again on a full disk; the files go regardless
            pass
        finally:
            self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for tmp, _ in self._moves:
            if os.path.exists(tmp):
                os.remove(tmp)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()


class NpyWriter(Writer):
    """A memory-mapped .npy. Writing into a mapping past a full disk kills the process with SIGBUS,
    so the space is checked first (`check_space`) and then reserved (`_reserve`) before any sample
    is written: a full disk is a one-line error, never a crash."""

    def __init__(self, path: str, n_samples: int, n_leads: int, units: str | None = None):
        check_space(path, n_samples, n_leads)
        super().__init__(path, [path])
        self._array = None
        try:
            self._array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32,
                                                    shape=(n_samples, n_leads))
            _reserve(self.tmp)
        except BaseException:   # no Writer is returned, so no __exit__ removes the temporary files
            self.discard()
            raise
        self._at = 0
        self._per_mv = 1.0 / to_mv_factor(units)

    def write(self, block_mv: np.ndarray) -> None:
        self._array[self._at:self._at + len(block_mv)] = np.asarray(block_mv) * self._per_mv
        self._at += len(block_mv)

    def finish(self) -> None:
        self._array.flush()
        self.close()

    def close(self) -> None:
        self._array = None   # unmaps it (the last reference)


def _reserve(path: str) -> None:
    """Allocate every block of the (sparse) file at `path`, so that a full disk is an ENOSPC here rather
    than a SIGBUS when the mapping is written. File systems without fallocate are left as they are."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if is_disk_full(e):
            raise
    finally:
        os.close(fd)


def output_bytes(path: str, n_samples: int, n_leads: int) -> int | None:
    """The size of a .npy output (float32 and its header) or of a WFDB record's .dat and .hea (int16 and
    a header); None for a .csv, whose size depends on the values."""
    ext = extension(output_path(path))
    if ext == ".npy":
        return 4 * n_samples * n_leads + 4096   # the header: 128 bytes; the rest is a margin
    if ext == ".hea":
        return 2 * n_samples * n_leads + 4096 + 256 * n_leads
    return None


def check_space(path: str, n_samples: int, n_leads: int) -> None:
    """Refuse, in one line, an output whose known size (`output_bytes`) exceeds the free space of its folder."""
    need = output_bytes(path, n_samples, n_leads)
    folder = os.path.dirname(os.path.abspath(path))
    free = free_bytes(folder)
    if need is None or free is None or free >= need:
        return
    raise DiskFullError(f"{folder} has {size_text(free)} free, {os.path.basename(output_path(path))} needs "
                        f"{size_text(need)} ({n_samples} samples x {n_leads} lead(s)); nothing was written: "
                        f"free some space or write the output to another folder")


class CsvWriter(Writer):
    def __init__(self, path: str, lead_names: list[str] | None, units: str | None = None):
        super().__init__(path, [path])
        self._file = None
        try:
            self._file = open(self.tmp, "w")
            if lead_names:
                self._file.write(",".join(lead_names) + "\n")
        except BaseException:   # no Writer is returned, so no __exit__ removes the temporary files
            self.discard()
            raise
        self._per_mv = 1.0 / to_mv_factor(units)

    def write(self, block_mv: np.ndarray) -> None:
        np.savetxt(self._file, np.asarray(block_mv) * self._per_mv, fmt="%.6f", delimiter=",")

    def finish(self) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class WfdbWriter(Writer):
    """WFDB format 16: interleaved little-endian int16 written block by block; header at the end."""

    def __init__(self, path: str, recording: Recording, n_samples: int):
        check_space(path, n_samples, recording.n_leads)
        name = _record_name(path)
        self.record = os.path.basename(name)
        self.fs, self.n_samples = recording.fs, n_samples
        self.units = recording.output_units
        self.names = list(recording.lead_names or [f"lead{i}" for i in range(recording.n_leads)])
        n = recording.n_leads
        if recording.wfdb_gain is not None:
            self.gain = np.asarray([g if g else 200.0 for g in recording.wfdb_gain])   # WFDB: gain 0 means 200
            self.baseline = np.asarray(recording.wfdb_baseline, np.int64)
        else:
            self.gain = np.asarray([1000.0 * to_mv_factor(u) for u in self.units])   # 1 µV steps
            self.baseline = np.zeros(n, np.int64)
        self._per_mv = self.gain / np.asarray([to_mv_factor(u) for u in self.units])
        self._dat = None
        super().__init__(path, [name + ".dat", name + ".hea"])
        try:
            self._dat = open(self._moves[0][0], "wb")
        except BaseException:   # no Writer is returned, so no __exit__ removes the temporary files
            self.discard()
            raise
        self._checksum = np.zeros(n, np.int64)
        self._first: np.ndarray | None = None

    def write(self, block_mv: np.ndarray) -> None:
        digital = np.round(np.asarray(block_mv, np.float64) * self._per_mv + self.baseline)
        digital = np.where(np.isfinite(digital), np.clip(digital, _WFDB_INVALID + 1, 32767), _WFDB_INVALID)
        digital = digital.astype("<i2")
        if self._first is None and len(digital):
            self._first = digital[0].astype(np.int64)
        self._checksum += digital.astype(np.int64).sum(axis=0)
        # file.write, not ndarray.tofile: tofile's error on a full disk ("86400 requested and 0 written")
        # carries no errno, so it could not be told from any other failure
        with self._failing_as_one_line(self._moves[0][1]):
            self._dat.write(digital.tobytes())

    def finish(self) -> None:
        with self._failing_as_one_line(self._moves[0][1]):
            self.close()
        with self._failing_as_one_line(self._moves[1][1]):
            self._write_header()

    def close(self) -> None:
        if self._dat is not None:
            self._dat.close()

    def _failing_as_one_line(self, final: str):
        """A failed write of the record's .dat or .hea as one line naming the file: a full disk is left to
        the caller's `disk_full_as_one_line` (it names the folder and the free space); any other error
        (an I/O error, a header wfdb refuses) is a DenoiseInputError."""
        return _one_line_unless_disk_full(f"cannot write the WFDB record {self.path} ({os.path.basename(final)})",
                                          "nothing was kept; check the folder and rerun")

    def _write_header(self) -> None:
        import wfdb

        n = len(self.names)
        record = wfdb.Record(
            record_name=self.record, n_sig=n, fs=self.fs, sig_len=self.n_samples,
            file_name=[self.record + ".dat"] * n, fmt=["16"] * n, adc_gain=[float(g) for g in self.gain],
            baseline=[int(b) for b in self.baseline], units=self.units, sig_name=self.names,
            adc_res=[16] * n, adc_zero=[0] * n, block_size=[0] * n,
            init_value=[int(v) for v in (self._first if self._first is not None else np.zeros(n))],
            checksum=[int(c) for c in self._checksum % 65536])
        # wrheader writes <record>.hea into a folder: write it in a private one, then move it
        # to the temporary name that commit() renames.
        with tempfile.TemporaryDirectory(dir=os.path.dirname(self._moves[1][0])) as folder:
            record.wrheader(write_dir=folder)
            os.replace(os.path.join(folder, self.record + ".hea"), self._moves[1][0])


@contextlib.contextmanager
def _one_line_unless_disk_full(what: str, hint: str):
    """An exception other than a full disk (and other than a DenoiseInputError or Ctrl-C) becomes
    DenoiseInputError("<what>: <the error in one line>; <hint>")."""
    try:
        yield
    except DenoiseInputError:
        raise
    except Exception as e:  # noqa: BLE001 -- any failure of the write is one line; a full disk is the caller's
        if is_disk_full(e):
            raise
        raise DenoiseInputError(f"{what}: {one_line(e)}; {hint}") from None


WFDB_RECORD_NAME = re.compile(r"^[-\w]+$")   # what wfdb accepts as a record name


def output_path(path: str) -> str:
    """The path an output is written to: a WFDB header's extension in lower case (out.HEA -> out.hea,
    next to out.dat), as wfdb reads and writes it; other extensions as given."""
    stem, ext = os.path.splitext(path)
    return stem + ".hea" if ext.lower() == ".hea" else path


def check_output_path(path: str, overwrite: bool = False) -> str:
    """Refuse an unknown output extension, a WFDB record name wfdb cannot read back, or an
    existing output, before any work is done; returns the path to write (`output_path`)."""
    ext = extension(path)
    if ext not in OUTPUT_EXTENSIONS:
        raise DenoiseInputError(f"{path}: unknown output extension {ext or '(none)'!r}; "
                                f"valid: {', '.join(OUTPUT_EXTENSIONS)}")
    path = output_path(path)
    if ext == ".hea":
        stem = os.path.basename(_record_name(path))
        if not WFDB_RECORD_NAME.match(stem):
            suggestion = re.sub(r"[^-\w]", "_", stem) or "record"
            raise DenoiseInputError(f"{path}: {stem!r} is not a WFDB record name wfdb can read back; use only "
                                    f"letters, digits, '_' and '-' before .hea (e.g. {suggestion}.hea)")
    finals = [_record_name(path) + ".dat", path] if ext == ".hea" else [path]
    existing = [p for p in finals if os.path.exists(p)]
    if existing and not overwrite:
        raise DenoiseInputError(f"{existing[0]} exists; refusing to overwrite it (use --overwrite)")
    folders = [p for p in finals if os.path.isdir(p)]
    if folders:
        raise DenoiseInputError(f"{folders[0]} is a folder; choose another output name")
    return path


def open_writer(path: str, recording: Recording, n_samples: int) -> Writer:
    path = output_path(path)
    ext = extension(path)
    if ext == ".npy":
        return NpyWriter(path, n_samples, recording.n_leads, recording.array_units)
    if ext == ".csv":
        return CsvWriter(path, recording.lead_names, recording.array_units)
    if ext == ".hea":
        return WfdbWriter(path, recording, n_samples)
    raise DenoiseInputError(f"{path}: unknown output extension {ext!r}; valid: {', '.join(OUTPUT_EXTENSIONS)}")
