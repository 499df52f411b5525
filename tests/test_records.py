"""WFDB loading and every bad-input message; the offline path of ecg_jax.data.download (scripts/download_data.py)."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest

from ecg_jax.data import download, records
from ecg_jax.errors import ConfigError, DataError


def copy_records(src_dir, dst_dir, db, names, with_sums=True):
    """Writable copies of a few records (+ their SHA256SUMS lines) under dst_dir/db."""
    src, dst = os.path.join(src_dir, db), os.path.join(dst_dir, db)
    os.makedirs(dst, exist_ok=True)
    wanted = set()
    for n in names:
        for ext in (".hea", ".dat"):
            shutil.copyfile(os.path.join(src, n + ext), os.path.join(dst, n + ext))
            wanted.add(n + ext)
    if with_sums:
        with open(os.path.join(src, "SHA256SUMS.txt")) as f:
            lines = [ln for ln in f if ln.split() and ln.split()[-1] in wanted]
        with open(os.path.join(dst, "SHA256SUMS.txt"), "w") as f:
            f.writelines(lines)
    return dst


@pytest.fixture
def two_records(shared_data_dir, tmp_path):
    copy_records(shared_data_dir, tmp_path, "mitdb", ["100", "101"])
    return tmp_path


def test_record_names_are_the_48_in_protocol_order():
    assert len(records.MITDB_RECORDS) == 48 and len(set(records.MITDB_RECORDS)) == 48
    assert list(records.MITDB_RECORDS) == sorted(records.MITDB_RECORDS)
    assert records.MITDB_RECORDS[:3] == ("100", "101", "102") and records.MITDB_RECORDS[-1] == "234"
    assert "110" not in records.MITDB_RECORDS and "204" not in records.MITDB_RECORDS


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ECG_JAX_DATA", str(tmp_path / "env"))
    assert records.resolve_data_dir(str(tmp_path / "cfg")) == str(tmp_path / "cfg")
    assert records.resolve_data_dir("") == str(tmp_path / "env")
    monkeypatch.delenv("ECG_JAX_DATA")
    assert records.resolve_data_dir("") is None


def test_select_records_sorts_and_validates():
    assert records.select_records(["201", "100", "119"]) == ["100", "119", "201"]
    assert records.select_records(()) == list(records.MITDB_RECORDS)
    with pytest.raises(ConfigError, match="unknown MIT-BIH record.*999.*valid records: 100, 101"):
        records.select_records(["100", "999"])


def test_load_mitdb_values_in_mv_and_sorted(shared_data_dir):
    loaded = records.load_mitdb(str(shared_data_dir), ["101", "100"])
    assert list(loaded) == ["100", "101"]
    x = loaded["100"]
    assert x.shape == (650000, 2) and x.dtype == np.float32
    # Header 100: first samples 995 and 1011 ADC units, baseline 1024, gain 200/mV.
    np.testing.assert_allclose(x[0], [(995 - 1024) / 200, (1011 - 1024) / 200], atol=1e-6)


def test_load_nstdb_default_gain(shared_data_dir):
    noise = records.load_nstdb(str(shared_data_dir))
    assert sorted(noise) == ["bw", "em", "ma"]
    assert all(v.shape == (650000, 2) and v.dtype == np.float32 for v in noise.values())
    # bw.hea: gain 0 -> 200 ADC/mV, baseline 0, first values -29 and 25.
    np.testing.assert_allclose(noise["bw"][0], [-29 / 200, 25 / 200], atol=1e-6)


def test_record_checksums_match_physionet_list(shared_data_dir):
    sums = records.record_checksums(str(shared_data_dir), ["mitdb/100", "nstdb/bw"])
    assert sorted(sums) == ["mitdb/100.dat", "mitdb/100.hea", "nstdb/bw.dat", "nstdb/bw.hea"]
    listed = records.read_checksum_list(os.path.join(shared_data_dir, "mitdb"))
    assert sums["mitdb/100.dat"] == listed["100.dat"]
    assert sums["mitdb/100.dat"].startswith("b2ea3c250e56")


def test_missing_folder_names_it_and_the_download_script(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as e:
        records.load_mitdb(str(missing), ["100"])
    assert str(missing) in str(e.value) and "scripts/download_data.py --out DIR" in str(e.value)
    assert "ECG_JAX_DATA" in str(e.value)
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(DataError, match=r"no nstdb/ folder.*download_data\.py"):
        records.load_nstdb(str(tmp_path / "empty"))


def test_missing_record_file(two_records):
    os.remove(two_records / "mitdb" / "101.dat")
    with pytest.raises(DataError, match=r"missing record file\(s\).*101\.dat.*download_data\.py"):
        records.load_mitdb(str(two_records), ["100", "101"])


def test_truncated_dat_is_caught_before_wfdb(two_records):
    path = two_records / "mitdb" / "101.dat"
    with open(path, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(DataError) as e:
        records.load_mitdb(str(two_records), ["100", "101"])
    msg = str(e.value)
    assert "101.dat is truncated" in msg and "1000 bytes" in msg and "needs 1950000" in msg


def test_checksum_mismatch_names_file_and_list(two_records):
    path = two_records / "mitdb" / "100.dat"
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        records.load_mitdb(str(two_records), ["100", "101"])
    msg = str(e.value)
    assert "checksum mismatch" in msg and "100.dat" in msg and "SHA256SUMS.txt" in msg
    # Without verification the (still well-formed) file loads.
    assert records.load_mitdb(str(two_records), ["100"], verify=False)["100"].shape == (650000, 2)


def edit_header(path, first_line, keep_signal_lines=2):
    lines = path.read_text().splitlines()
    path.write_text("\n".join([first_line] + lines[1:1 + keep_signal_lines]) + "\n")


def test_header_with_wrong_sampling_rate(two_records):
    edit_header(two_records / "mitdb" / "100.hea", "100 2 250 650000")
    with pytest.raises(DataError, match=r"100\.hea gives sampling rate 250.* expected 360 Hz"):
        records.load_mitdb(str(two_records), ["100"])


def test_header_with_wrong_signal_count(two_records):
    edit_header(two_records / "mitdb" / "100.hea", "100 1 360 650000", keep_signal_lines=1)
    with pytest.raises(DataError, match=r"100\.hea gives 1 signal\(s\), expected 2"):
        records.load_mitdb(str(two_records), ["100"])


def test_unreadable_header_is_wrapped(two_records):
    (two_records / "mitdb" / "100.hea").write_text("this is not a header\n")
    with pytest.raises(DataError, match=r"cannot read WFDB header .*100\.hea"):
        records.load_mitdb(str(two_records), ["100"])


def test_download_probe_gives_up_after_its_timeout(tmp_path, monkeypatch):
    """The probe hangs until the check has given up: the check must not wait for it (a check
    that did would see the probe's own error, after 60 s, instead of "no answer")."""
    gave_up = threading.Event()

    def hang(*args, **kwargs):
        gave_up.wait(60)   # answers (with an error) only once the check has returned
        raise OSError("late")

    monkeypatch.setattr(download.urllib.request, "urlopen", hang)
    try:
        with pytest.raises(DataError, match=r"no answer within 0\.5 s.*no internet connection.*copy PhysioNet's mitdb"):
            download.check_connectivity(str(tmp_path), timeout=0.5)
    finally:
        gave_up.set()


def test_download_offline_fails_fast_and_writes_nothing(tmp_path, monkeypatch):
    """Offline as on a machine without DNS (simulated, so that a machine with
    internet never starts a real download from the test suite). Fast: the probe's own answer
    (not its 5 s timeout) is reported, after one probe and before any download starts."""
    probes = []

    def no_dns(*args, **kwargs):
        probes.append(args)
        raise download.urllib.error.URLError(OSError(-2, "Name or service not known"))

    def no_download(*args, **kwargs):
        raise AssertionError("a download started although the probe failed")

    monkeypatch.setattr(download.urllib.request, "urlopen", no_dns)
    monkeypatch.setattr(download, "download_database", no_download)
    out = tmp_path / "data"
    with pytest.raises(DataError) as e:
        download.download_all(str(out), timeout=5.0)
    msg = str(e.value)
    assert "cannot reach https://physionet.org/" in msg and "Name or service not known" in msg
    assert "no internet connection" in msg
    assert f"ECG_JAX_DATA={out}" in msg
    assert not out.exists()  # nothing half-done
    assert len(probes) == 1


def test_download_skips_verified_copies(shared_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "check_connectivity", lambda *a, **k: pytest.fail("probed network"))
    copy_records(shared_data_dir, tmp_path, "nstdb", ["bw", "em", "ma"])
    monkeypatch.setattr(download, "DATABASES", (("nstdb", ["bw", "em", "ma"], None),))
    download.download_all(str(tmp_path))
    assert "nothing to do" in capsys.readouterr().out
