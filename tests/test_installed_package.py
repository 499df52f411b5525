"""ecg-jax as a user gets it: the `ecg-jax` front door, built-in configs by name, and (slow) the wheel
installed into a fresh virtualenv, used from a folder outside the repository.

The fresh virtualenv sees the dependencies already installed in the
environment that runs the tests (requirements.txt), whatever that is: the
machine's interpreter, a virtualenv, a uv or conda environment. Its
`--system-site-packages` would show the *base* interpreter's packages, not an
outer virtualenv's, so instead a .pth file lists the running interpreter's
package folders (never this checkout). The wheel itself goes in with
--no-deps, so the test needs no network. That the package's own files come
from the virtualenv, not from this checkout, is asserted.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from ecg_jax import cli
from ecg_jax.commands import COMMANDS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRONT_DOOR = [sys.executable, "-m", "ecg_jax"]
# What a user's shell passes on, without anything that points into this checkout.
BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH")}


def run(args, cwd, env=None, timeout=600):
    return subprocess.run(args, cwd=cwd, env=env or BASE_ENV, capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ the front door, in this checkout

def test_builtin_configs_are_the_config_files_of_configs():
    files = {f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py")}
    assert set(cli.builtin_configs()) == files - {"__init__", "common"}
    assert {"dancer", "unet", "final", "paper", "default"} <= set(cli.builtin_configs())


def test_config_names_become_paths_and_paths_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dancer = os.path.join(cli.configs_dir(), "dancer.py")
    assert os.path.samefile(dancer, os.path.join(REPO, "configs", "dancer.py"))
    assert cli.config_file("dancer:smoke") == dancer + ":smoke"
    assert cli.config_file("final:ralenet,smoke") == os.path.join(cli.configs_dir(), "final.py") + ":ralenet,smoke"
    assert cli.config_file("unet") == os.path.join(cli.configs_dir(), "unet.py")
    for path in ("configs/dancer.py:smoke", "my.py", "/abs/unet.py:smoke", "../x/unet.py"):
        assert cli.config_file(path) == path
    with pytest.raises(FileNotFoundError, match=r"no config file 'unte'.*built in: acdae, .*unet"):
        cli.config_file("unte:smoke")
    with pytest.raises(FileNotFoundError):      # the shared part is not a config
        cli.config_file("common")
    (tmp_path / "unet").write_text("def get_config(arg=None):\n    return {}\n")
    assert cli.config_file("unet:smoke") == "unet:smoke"   # a file of exactly that name wins


def test_front_door_lists_every_command_and_refuses_unknown_ones(tmp_path):
    proc = run(FRONT_DOOR + ["--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in COMMANDS:
        assert sum(line.split()[:1] == [name] for line in lines) == 1, (name, proc.stdout)
    bad = run(FRONT_DOOR + ["trian", "--workdir=W"], tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("error: unknown command 'trian'; did you mean train? "
                                  "(python -m ecg_jax --help lists them)")
    assert run(FRONT_DOOR, tmp_path).returncode == 2


def test_every_command_shows_its_own_flags(tmp_path):
    """Each subcommand's module imports and `--help` lists the flags that module defines (and not
    another command's: absl flags are process-global, so only the chosen module may be imported)."""
    own_flag = {"train": "--workdir", "evaluate": "--epoch", "tables": "--results", "reproduce": "--config",
                "prepare": "--export", "baselines": "--config", "denoise": "--fs", "export": "--score_members",
                "summary": "--repeats", "download": "--timeout", "benchmark": "--loops",
                "benchmark-data": "--config", "benchmark-layouts": "--layouts", "benchmark-denoise": "--per_record",
                "benchmark-memory": "--sizes", "benchmark-sweep": "--rates",
                "export-programs": "--skip_unavailable"}
    assert set(own_flag) == set(COMMANDS)
    procs = {name: subprocess.Popen(FRONT_DOOR + [name, "--help"], cwd=tmp_path, env=BASE_ENV, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in COMMANDS}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err)
        assert out.startswith(f"usage: python -m ecg_jax {name} [flags]"), (name, out)
        shown = set(re.findall(r"^  --(?:\[no\])?(\w+):", out, flags=re.M))
        assert own_flag[name][2:] in shown, (name, out)
        if name == "train":
            assert {"config", "workdir", "coordinator_address", "num_processes", "process_id"} <= shown, out
            assert not shown & {"fs", "results", "layouts", "loops", "per_record", "export"}, out


def test_config_given_by_name_equals_the_file(tmp_path):
    """`--config unet:smoke --config.seeds=3` gives exactly what the file path gives."""
    code = ("import json\nfrom absl import app\nfrom ecg_jax.cli import define_config_file, run_main\n"
            "c = define_config_file(None, 'x')\n"
            "app.run(run_main(lambda argv: print(json.dumps(c.value.to_dict(), sort_keys=True, default=str))))\n")
    by_name = run([sys.executable, "-c", code, "--config", "unet:smoke", "--config.seeds=3"], tmp_path)
    by_path = run([sys.executable, "-c", code, "--config", os.path.join(REPO, "configs", "unet.py:smoke"),
                   "--config.seeds=3"], tmp_path)
    assert by_name.returncode == 0 and by_path.returncode == 0, by_name.stderr + by_path.stderr
    config = json.loads(by_name.stdout)
    assert config == json.loads(by_path.stdout) and config["seeds"] == 3 and config["model"] == "unet"
    unknown = run([sys.executable, "-c", code, "--config", "unte:smoke"], tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"error: --config=unte:smoke: cannot load the config file (no config file 'unte' and no built-in config "
        f"of that name (built in: {', '.join(cli.builtin_configs())}))"]


# Changing the module path (reading it, e.g. to say where a module was looked for, is fine).
SYS_PATH_CHANGE = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend|remove|pop|clear)\b"
                             r"|\+=|=(?!=)|\[[^]]*\]\s*=(?!=))")


def test_no_sys_path_manipulation_and_scripts_are_thin_wrappers():
    offenders = []
    for top in ("ecg_jax", "scripts", "configs"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for f in files:
                if f.endswith((".py", ".sh")):
                    with open(os.path.join(root, f)) as fh:
                        if SYS_PATH_CHANGE.search(fh.read()):
                            offenders.append(os.path.relpath(os.path.join(root, f), REPO))
    assert offenders == []
    scripts = sorted(f for f in os.listdir(os.path.join(REPO, "scripts")) if f.endswith(".py"))
    assert len(scripts) >= 13
    for f in scripts:
        with open(os.path.join(REPO, "scripts", f)) as fh:
            text = fh.read()
        called = [name for name in COMMANDS if f'run_script("{name}")' in text]
        assert len(called) == 1 and "flags.DEFINE" not in text, f


def test_a_script_without_the_package_says_so_in_one_line(tmp_path):
    """`python -S`: no site-packages, so no installed (or editable) ecg_jax, and the script's own folder
    is what Python puts first: the wrapper must not find the package by itself."""
    proc = run([sys.executable, "-S", os.path.join(REPO, "scripts", "train.py"), "--workdir=W"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: the ecg_jax package is not installed; from the repository root: pip install -e ."]


# ------------------------------------------------------------------ the wheel, installed

def _copy_checkout(dst):
    """The files a build sees, without this checkout's caches and run outputs (and without
    writing build/ into the checkout, which other runs may be using)."""
    ignore = shutil.ignore_patterns(".git", "runs", "workdirs", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".whl", ".venv")
    shutil.copytree(REPO, dst, symlinks=True, ignore=ignore)


SNIPPET = """
import json, sys
import numpy as np
import ecg_jax, ecg_jax.configs, ecg_jax.denoise
from ecg_jax.denoise import load_denoiser
x = np.loadtxt(sys.argv[1], delimiter=",")
d = load_denoiser()                 # the README's snippet: the shipped weights
y = d(x, fs=500)
np.save(sys.argv[2], y)
print(json.dumps({"ecg_jax": ecg_jax.__file__, "configs": ecg_jax.configs.__file__,
                  "weights": ecg_jax.denoise.DEFAULT_WEIGHTS, "shape": list(y.shape)}))
"""


def running_package_folders() -> list[str]:
    """The folders this interpreter imports installed packages from, none inside the checkout.

    A folder named in a .pth file is put on the path as it is; the .pth files
    inside it are not run, so an editable install of this checkout stays out.
    """
    repo = os.path.realpath(REPO)
    folders = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.curdir)
        inside = real == repo or real.startswith(repo + os.sep)
        if os.path.isdir(real) and not inside and os.path.basename(real) in ("site-packages", "dist-packages"):
            folders.append(real)
    return list(dict.fromkeys(folders))


def make_virtualenv_seeing_these_packages(venv) -> str:
    """A fresh virtualenv whose interpreter also imports this environment's packages; its python."""
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv.parent)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv.parent)
    assert purelib.returncode == 0, purelib.stderr
    folders = running_package_folders()
    assert folders, f"no site-packages folder on {sys.path}"
    with open(os.path.join(purelib.stdout.strip(), "_running_environment.pth"), "w") as f:
        f.write("\n".join(folders) + "\n")
    return python


def test_the_fresh_virtualenv_sees_this_environments_packages_not_the_checkout(tmp_path):
    python = make_virtualenv_seeing_these_packages(tmp_path / "venv")
    code = "import json, sys, jax, numpy; print(json.dumps([sys.prefix, jax.__file__, numpy.__file__]))"
    proc = run([python, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    prefix, jax_file, numpy_file = json.loads(proc.stdout)
    assert os.path.realpath(prefix) == os.path.realpath(tmp_path / "venv")
    import jax
    assert os.path.realpath(jax_file) == os.path.realpath(jax.__file__)     # the running environment's jax
    missing = run([python, "-c", "import ecg_jax"], tmp_path)             # the checkout is not visible
    assert missing.returncode != 0 and "No module named 'ecg_jax'" in missing.stderr


@pytest.mark.slow
def test_wheel_in_a_fresh_virtualenv(tmp_path, shared_data_dir):
    src, dist, venv, work = (tmp_path / n for n in ("src", "dist", "venv", "work"))
    _copy_checkout(src)
    build = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                 str(src)], tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("ecg_jax-*.whl")

    # Every package of the checkout, the built-in configs and the shipped weights and card are in it.
    names = set(zipfile.ZipFile(wheel).namelist())
    for root, _, files in os.walk(os.path.join(REPO, "ecg_jax"), followlinks=True):
        for f in files:
            if f.endswith(".py") or f in ("dancer.npz", "dancer.json"):
                member = os.path.relpath(os.path.join(root, f), REPO).replace(os.sep, "/")
                assert member in names, member
    assert {"ecg_jax/configs/unet.py", "ecg_jax/configs/common.py", "ecg_jax/weights/dancer.npz",
            "ecg_jax/commands/train.py", "ecg_jax/train/loop.py", "ecg_jax/__main__.py"} <= names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "ecg-jax = ecg_jax.commands:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    python = make_virtualenv_seeing_these_packages(venv)
    ecg_jax_cmd = str(venv / "bin" / "ecg-jax")
    inst = run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", str(wheel)], tmp_path)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    shutil.rmtree(src)            # nothing may come from the copy the wheel was built from
    work.mkdir()

    # The README's Python snippet, from outside the repository, with the shipped weights.
    t = np.arange(0, 12, 1 / 500)
    x = np.stack([np.sin(2 * np.pi * 1.2 * t) + 0.2 * np.sin(2 * np.pi * 0.3 * t),
                  0.5 * np.cos(2 * np.pi * 1.2 * t)], axis=1)
    np.savetxt(work / "ecg.csv", x, fmt="%.6f", delimiter=",")
    (work / "snippet.py").write_text(SNIPPET)
    snippet = run([python, "snippet.py", "ecg.csv", "y.npy"], work)
    assert snippet.returncode == 0, snippet.stderr
    where = json.loads(snippet.stdout.strip().splitlines()[-1])
    site = str(venv.resolve())
    for key in ("ecg_jax", "configs", "weights"):
        assert os.path.realpath(where[key]).startswith(site), (key, where)   # the wheel's copy, not REPO's
    assert where["shape"] == list(x.shape)
    y = np.load(work / "y.npy")
    assert np.isfinite(y).all() and not np.allclose(y, np.loadtxt(work / "ecg.csv", delimiter=","))

    # The same through the command line: the same numbers (written as %.6f mV).
    den = run([ecg_jax_cmd, "denoise", "ecg.csv", "--fs", "500", "--output", "clean.csv"], work)
    assert den.returncode == 0, den.stderr
    assert den.stdout.startswith("denoised 12.0 s x 2 lead(s) at 500 Hz -> clean.csv")
    with open(work / "clean.csv") as f:
        cleaned = np.array([[float(v) for v in row] for row in csv.reader(f)])
    np.testing.assert_allclose(cleaned, y, rtol=0, atol=1e-6)

    helped = run([python, "-m", "ecg_jax", "--help"], work)
    assert helped.returncode == 0 and "  train " in helped.stdout and "  denoise " in helped.stdout, helped.stderr

    # One epoch of the U-Net smoke config, by its built-in name.
    env = dict(BASE_ENV, ECG_JAX_DATA=str(shared_data_dir))
    trained = run([ecg_jax_cmd, "train", "--config", "unet:smoke", "--config.train.epochs=1", "--workdir", "W"],
                  work, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    with open(work / "W" / "results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    with open(work / "W" / "config.json") as f:
        config = json.load(f)
    assert config["model"] == "unet" and config["train"]["epochs"] == 1
    assert len(rows) == config["seeds"] * len(config["noise_types"]) * len(config["snr_levels"])
    assert {r["method"] for r in rows} == {"unet"} and {r["epochs"] for r in rows} == {1}
    assert all(np.isfinite(r["metrics"]["snr_db"]) and r["source"] == "physionet" for r in rows)
