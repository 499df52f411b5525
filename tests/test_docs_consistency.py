"""The documents agree with each other and with what the repository runs (issue 33).

What can be checked mechanically, without running anything heavy (well under a second):

- a measured figure quoted in several documents lives once in docs/figures.json (value, date, load,
  command) and is cited as `<!-- fig:KEY -->VALUE`: a citation whose text does not start with the value
  fails, and so does a key nobody cites or a marker with no key;
- statements that were superseded appear only in the dated logs at the end of BENCHMARKS.md and
  FIDELITY.md (the part from a heading "## Log" on);
- every relative link in README.md, BENCHMARKS.md, FIDELITY.md and docs/*.md points to an existing file;
- README.md is under 250 lines with both commands in its first 40, and they are the ones CI runs:
  `.ci/run` runs the test command, `scripts/test.sh` installs what the main job installs, and the
  main job's subcommand and config exist;
- FIDELITY's loop over the final revision's networks names every network of configs/final.py.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures.json"
MAIN_JOB = "pip install -r requirements.txt -e . && ecg-jax reproduce --config paper:smoke --workdir runs/smoke"
TEST_COMMAND = "bash scripts/test.sh"
MARKER = re.compile(r"<!-- fig:([A-Za-z0-9_]+) -->([^\n|<]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Values that were replaced by a later measurement, or claims withdrawn: only the logs may say them.
SUPERSEDED = {
    r"\b2\.5 h\b": "RALENet's training time: 2 h 23 min (fig:ralenet_train_time)",
    r"\b2\.4 h\b": "RALENet's training time: 2 h 23 min (fig:ralenet_train_time)",
    r"\b197 s\b": "the Holter run's denoising time: 196 s (fig:holter_denoise_time)",
    r"70-100 ms": "the CPU member-step: 24.3 ms / 43.3 ms (fig:unet_ms_per_step, fig:dancer_ms_per_step)",
    r"under 10 min": "the suite: fig:suite_time, fig:suite_time_quiet",
    r"buy little": "the cheaper precisions: a predicted speed-up (fig:precision_speedup)",
    r"shrunk, minutes": "the shrunk final grid: about 2,340 s (fig:final_smoke_grid_time)",
    r"(?<!meant to )(?<!meant to make GPU runs )resume bit-exactly\.": "GPU bit-exact resumption is untested",
}


def documents() -> list[pathlib.Path]:
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "FIDELITY.md",
            *sorted((ROOT / "docs").glob("*.md"))]


def current_part(path: pathlib.Path) -> str:
    """The document up to its dated log ("## Log..."), where superseded values are allowed."""
    text = path.read_text()
    m = re.search(r"^## Log\b", text, flags=re.M)
    return text[: m.start()] if m else text


def figures() -> dict:
    return {k: v for k, v in json.loads(FIGURES.read_text()).items() if not k.startswith("_")}


def test_figures_have_date_load_and_command():
    for key, fig in figures().items():
        for field in ("value", "what", "date", "load", "command", "source"):
            assert str(fig.get(field, "")).strip(), f"docs/figures.json: {key} has no {field}"
        command = fig["command"]
        assert command.startswith(("ecg-jax", "python", "bash", "CI=true", "pip ", "/usr/bin/time",
                                   "no command yet")), f"{key}: {command!r} is not a command"


def test_every_cited_figure_matches_its_canonical_value():
    figs, cited, wrong = figures(), set(), []
    for path in documents():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for key, text in MARKER.findall(line):
                rel = path.relative_to(ROOT)
                if key == "KEY":          # the documents' own example of the notation
                    continue
                if key not in figs:
                    wrong.append(f"{rel}:{n}: fig:{key} is not in docs/figures.json")
                    continue
                cited.add(key)
                if not text.strip().startswith(figs[key]["value"]):
                    wrong.append(f"{rel}:{n}: fig:{key} reads {text.strip()!r}, docs/figures.json says "
                                 f"{figs[key]['value']!r} ({figs[key]['date']})")
    assert not wrong, "\n".join(wrong)
    assert cited == set(figs), f"never cited: {sorted(set(figs) - cited)}"


def test_the_marker_check_catches_a_different_value():
    line = "RALENet took <!-- fig:ralenet_train_time -->2.5 h here"
    ((key, text),) = MARKER.findall(line)
    assert key == "ralenet_train_time" and not text.startswith(figures()[key]["value"])


def test_superseded_values_only_in_the_logs():
    found = []
    for path in documents():
        text = current_part(path)
        for pattern, now in SUPERSEDED.items():
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r} is superseded ({now}); "
                             "move it to the dated log")
    assert not found, "\n".join(found)


def test_relative_links_point_to_existing_files():
    broken = []
    for path in documents():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                file = target.split("#", 1)[0]
                if not (path.parent / file).exists():
                    broken.append(f"{path.relative_to(ROOT)}:{n}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250, f"README.md has {len(lines)} lines; move long sections to docs/"
    head = "\n".join(lines[:40])
    assert MAIN_JOB in head, "the main-job command must be in README's first 40 lines"
    assert f"```bash\n{TEST_COMMAND}\n```" in head, "the test command must be in README's first 40 lines"
    assert "python3 -m venv venv && . venv/bin/activate" in head, "the virtualenv advice is part of the commands"


def test_readme_commands_are_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in [line.strip() for line in ci], ".ci/run must run README's test command"
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert re.search(r"pip install[^\n]*-r requirements\.txt", test_sh), "scripts/test.sh installs requirements.txt"
    assert re.search(r"pip install[^\n]*-e \.", test_sh), "scripts/test.sh installs the package editable"
    # the main job's subcommand and config exist
    tree = ast.parse((ROOT / "ecg_jax" / "commands" / "__init__.py").read_text())
    commands = next(ast.literal_eval(n.value) for n in ast.walk(tree)
                    if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "COMMANDS")
    assert "reproduce" in commands
    assert "smoke" in (ROOT / "configs" / "paper.py").read_text()
    # BENCHMARKS times the same commands
    bench = current_part(ROOT / "BENCHMARKS.md")
    assert "`ecg-jax reproduce --config paper:smoke --workdir runs/smoke`" in bench
    assert "`CI=true bash .ci/run`" in bench


def _final_networks() -> set[str]:
    tree = ast.parse((ROOT / "configs" / "final.py").read_text())
    values = {n.targets[0].id: n.value for n in tree.body
              if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
    return set(ast.literal_eval(values["MAIN_NETWORKS"])) | set(ast.literal_eval(values["VARIANTS"]))


def test_fidelity_final_loop_names_every_final_network():
    text = current_part(ROOT / "FIDELITY.md")
    m = re.search(r"for net in (drsn[^;]*?); do", text, flags=re.S)
    assert m, "FIDELITY.md: the loop over the final networks is missing"
    looped = set(m.group(1).replace("\\", " ").split())
    # the final U-Net has its own command in the same section (`--config configs/final.py`)
    assert "--config configs/final.py --workdir runs/final-unet" in text
    assert looped | {"unet"} == _final_networks(), f"missing: {sorted(_final_networks() - looped - {'unet'})}"


@pytest.mark.parametrize("name", ["protocol", "training", "accelerators", "reliability", "denoising",
                                  "your-own-network", "known-issues", "development", "sweeps"])
def test_docs_pages_exist_with_a_summary(name):
    lines = (ROOT / "docs" / f"{name}.md").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2].strip() and lines[3].strip(), \
        f"docs/{name}.md must start with a title and a two-line summary"
    assert f"docs/{name}.md" in (ROOT / "README.md").read_text(), f"README must link docs/{name}.md"


def test_known_issues_keep_the_repro():
    text = (ROOT / "docs" / "known-issues.md").read_text()
    assert "print(jax.jit(jax.grad(f))(k, x, t).ravel())" in text and "jax.disable_jit()" in text
    sweeps = (ROOT / "docs" / "sweeps.md").read_text()
    assert "being built" not in sweeps and "--config.sweep.train.learning_rate" in sweeps
