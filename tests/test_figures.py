"""report/figures.py: the example figure and the SNR curves from small hand-made inputs (Agg, no pyplot)."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ecg_jax.metrics import METRIC_NAMES  # noqa: E402
from ecg_jax.report import figures  # noqa: E402
from ecg_jax.results import make_row  # noqa: E402

L = 128


def window():
    """A two-lead window with hand-set errors: output SNRs on it are 20·log10(1/k) dB for error k·clean."""
    t = np.arange(L) / 360.0
    clean = np.stack([np.sin(2 * np.pi * 3 * t), 0.5 * np.cos(2 * np.pi * 3 * t)], axis=-1)
    noisy = clean * 2.0                               # error = clean -> 0 dB
    outputs = {                                       # error = k·clean -> -20·log10(k) dB
        "FFT": clean * 1.5,                           # 6.02 dB
        "DWT": clean * 1.25,                          # 12.04 dB
        "U-Net": clean * 1.1,                         # 20 dB
        "DACNN": clean * 1.8,                         # 1.94 dB
        "DANCER": clean * 1.05,                       # 26.02 dB
        "CIADNet": clean * 1.2,                       # 13.98 dB
    }
    return clean, noisy, outputs


def data_lines(ax):
    return [ln for ln in ax.get_lines() if len(ln.get_xdata()) == L]


def bbox_overlap(a, b) -> bool:
    """True when two display-space boxes share an area (touching edges do not count)."""
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


# ------------------------------------------------------------ choice of outputs

def test_window_snr_is_hand_computed():
    clean, noisy, outputs = window()
    assert figures.window_snr_db(clean, noisy) == pytest.approx(0.0)
    assert figures.window_snr_db(clean, outputs["U-Net"]) == pytest.approx(20.0)
    assert figures.window_snr_db(clean, clean) == math.inf


def test_default_choice_best_network_best_baseline_runner_up():
    clean, _, outputs = window()
    # By the SNR on this window: DANCER (26 dB) best network, DWT (12 dB) best baseline,
    # then U-Net (20 dB) the runner-up network.
    assert figures.choose_outputs(outputs, clean) == ["DANCER", "DWT", "U-Net"]
    # By given scores (e.g. the mean over seeds from the results) instead.
    scores = {"FFT": 3.0, "DWT": 1.0, "U-Net": 9.0, "DACNN": 10.0, "DANCER": 2.0}
    assert figures.choose_outputs(outputs, clean, scores=scores) == ["DACNN", "FFT", "U-Net"]
    # Without a baseline, the first output given is the reference (the ablation figure).
    ablation = {"Baseline (U-Net)": clean * 1.5, "+ Channel Shrink": clean * 1.2,
                "+ Spatial Shrink": clean * 1.1, "+ Channel & Spatial Shrink": clean * 1.05}
    assert figures.choose_outputs(ablation, clean) == [
        "+ Channel & Spatial Shrink", "Baseline (U-Net)", "+ Spatial Shrink"]
    # Fewer outputs than three: all of them.
    assert figures.choose_outputs({"FFT": clean}, clean) == ["FFT"]
    assert figures.choose_outputs({}, clean) == []


def test_requested_outputs_are_taken_as_given():
    clean, _, outputs = window()
    assert figures.choose_outputs(outputs, clean, show=["fft", "DACNN"]) == ["FFT", "DACNN"]
    with pytest.raises(ValueError, match="no output named 'emd'"):
        figures.choose_outputs(outputs, clean, show=["emd"])
    with pytest.raises(ValueError, match="at most 3"):
        figures.choose_outputs(outputs, clean, show=["FFT", "DWT", "U-Net", "DANCER"])


# ------------------------------------------------------------ example figure

@pytest.mark.parametrize("show", [None, ["fft", "DACNN"]])
def test_example_figure_lines_legend_and_labels(show):
    clean, noisy, outputs = window()
    fig = figures.denoising_example_figure(clean, noisy, outputs, 360.0, "title", show=show)
    expected = ["DANCER", "DWT", "U-Net"] if show is None else ["FFT", "DACNN"]   # display names
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2                                           # one panel per lead
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in axes if ax.get_legend() is not None] + list(fig.legends)
    assert len(legends) == 1
    legend = legends[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:2] == ["clean target", "noisy input (SNR 0.0 dB)"]
    assert [t.split(" (SNR")[0] for t in texts[2:]] == expected     # the chosen outputs, in order
    first = outputs[expected[0]]
    assert texts[2].endswith(f"(SNR {figures.window_snr_db(clean, first):.1f} dB)")
    fig.draw_without_rendering()
    legend_box = legend.get_window_extent(renderer)
    for lead, ax in enumerate(axes):
        lines = data_lines(ax)
        assert len(lines) == 2 + len(expected) <= 5
        # The legend lies outside every panel.
        assert not bbox_overlap(legend_box, ax.get_window_extent(renderer))
        # Noisy light grey, clean black and on top, outputs in distinct colours.
        colours = [to_hex(ln.get_color()) for ln in lines]
        assert colours[0] == to_hex(figures.NOISY_COLOUR) and colours[-1] == "#000000"
        assert lines[-1].get_zorder() > max(ln.get_zorder() for ln in lines[:-1])
        assert len(set(colours)) == len(colours)
        np.testing.assert_allclose(lines[0].get_ydata(), noisy[:, lead])
        np.testing.assert_allclose(lines[-1].get_ydata(), clean[:, lead])
        for ln, name in zip(lines[1:-1], expected, strict=True):
            np.testing.assert_allclose(ln.get_ydata(), outputs[name][:, lead])
        assert ax.get_ylabel() == f"lead {lead + 1} (mV)"
    assert "time (s)" in axes[-1].get_xlabel() and "360 Hz" in axes[-1].get_xlabel()
    np.testing.assert_allclose(data_lines(axes[0])[0].get_xdata()[:2], [0.0, 1 / 360.0])


def test_overlap_check_sees_a_legend_inside_the_axes():
    clean, noisy, outputs = window()
    fig = figures.denoising_example_figure(clean, noisy, outputs, 360.0, "title")
    legend = fig.axes[0].get_legend()
    legend.set_bbox_to_anchor((0.5, 0.5), transform=fig.axes[0].transAxes)
    legend.set_loc("center")
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    assert bbox_overlap(legend.get_window_extent(renderer), fig.axes[0].get_window_extent(renderer))


def test_example_figure_is_written_and_rejects_bad_shapes(tmp_path):
    clean, noisy, outputs = window()
    paths = figures.plot_denoising_example(clean, noisy, outputs, 360, "x", str(tmp_path / "ex"),
                                           show=["U-Net"])
    assert [os.path.basename(p) for p in paths] == ["ex.png", "ex.svg"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
    with pytest.raises(ValueError, match="shape"):
        figures.plot_denoising_example(clean, noisy[:-1], outputs, 360, "x", str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="'FFT' has shape"):
        figures.plot_denoising_example(clean, noisy, {"FFT": clean[:, :1]}, 360, "x", str(tmp_path / "bad"))
    # One lead, no outputs: still a figure (clean and noisy only).
    fig = figures.denoising_example_figure(clean[:, :1], noisy[:, :1], {}, 360, "")
    assert len(data_lines(fig.axes[0])) == 2


# ------------------------------------------------------------ SNR curves

def rows_for(noise_types, methods=("fft", "dwt", "unet", "dancer"), levels=(-4, 0, 4)):
    rows = []
    for nt in noise_types:
        for lv in levels:
            for i, m in enumerate(methods):
                seeds = [None] if m in ("fft", "dwt") else [0, 1]
                for s in seeds:
                    metrics = {k: 0.5 for k in METRIC_NAMES}
                    metrics.update(snr_db=lv + i + (0 if s is None else s), rmse=0.1)
                    rows.append(make_row(method=m, noise_type=nt, snr_db=lv, seed=s, split="reference",
                                         source="physionet", metrics=metrics))
    return rows


def test_snr_curves_grid_page_width_legend_outside():
    fig = figures.snr_curve_figure(rows_for(["emb", "bw", "em", "ma"]))
    assert fig.get_size_inches()[0] == pytest.approx(figures.PAGE_WIDTH_IN)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in panels] == [(2, 2)] * 4
    assert [ax.get_title().split(" ")[0] for ax in panels] == ["emb", "bw", "ma", "em"]
    assert fig.get_supylabel().startswith("output SNR (dB)")
    assert [ax.get_xlabel() for ax in panels] == ["", "", "input SNR (dB)", "input SNR (dB)"]
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["FFT", "DWT", "U-Net", "DANCER", "output = input"]
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert not any(bbox_overlap(box, ax.get_window_extent(renderer)) for ax in panels)
    # Markers on every method; baselines dashed with open markers, networks solid; distinct colours.
    containers = panels[0].containers            # drawn in legend order: FFT, DWT, U-Net, DANCER
    lines = [c.lines[0] for c in containers]
    assert len(lines) == 4 and all(ln.get_marker() not in (None, "None", "") for ln in lines)
    assert len({ln.get_marker() for ln in lines}) == 4 and len({to_hex(ln.get_color()) for ln in lines}) == 4
    fft, unet = lines[0], lines[2]
    assert fft.get_linestyle() == "--" and to_hex(fft.get_markerfacecolor()) == "#ffffff"
    assert unet.get_linestyle() == "-"
    # The plotted means are the series' (up to the small x nudge), and every x tick is an input level.
    unet_series = figures.snr_curve_series(rows_for(["emb", "bw", "em", "ma"]))["emb"]["unet"]
    np.testing.assert_allclose(np.asarray(unet.get_ydata(), float), unet_series.means)
    assert np.max(np.abs(np.asarray(unet.get_xdata(), float) - unet_series.levels)) < 0.35
    assert list(panels[0].get_xticks()) == [-4.0, 0.0, 4.0]
    ident = [ln for ln in panels[0].get_lines() if ln.get_linestyle() == ":"]
    assert len(ident) == 1


def test_snr_curves_odd_and_single_panel_counts(tmp_path):
    fig = figures.snr_curve_figure(rows_for(["emb", "bw", "em"]))
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    fig = figures.snr_curve_figure(rows_for(["emb"]))
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes if ax.get_visible()] == [(1, 1)]
    paths = figures.plot_snr_curves(rows_for(["emb", "bw"]), str(tmp_path / "curves"))
    assert [os.path.basename(p) for p in paths] == ["curves.png", "curves.svg"]
    assert all(os.path.getsize(p) > 1000 for p in paths)
    with pytest.raises(ValueError, match="one \\(split, source\\)"):
        rows = rows_for(["emb"]) + [dict(rows_for(["emb"])[0], source="synthetic")]
        figures.snr_curve_figure(rows)


def test_classical_methods_get_readable_labels():
    rows = rows_for(["emb"], methods=("fft", "emd", "unet"))
    fig = figures.snr_curve_figure(rows)
    assert [t.get_text() for t in fig.legends[0].get_texts()][:3] == ["FFT", "EMD", "U-Net"]
    assert isinstance(fig.legends[0].legend_handles[-1], Line2D)


def test_snr_curves_are_drawn_per_revision(tmp_path):
    """A "first" FFT row and a "paper" FFT row of the same dataset never share one curve."""
    from ecg_jax.report.figures import plot_snr_curves_by_protocol
    from ecg_jax.results import make_row

    def row(revision, snr_out):
        metrics = {k: 0.1 for k in ("rmse", "snr_improvement_db", "prd", "ssd", "mad", "cosine")}
        metrics["snr_db"] = snr_out
        return make_row(method="fft", noise_type="emb", snr_db=-4, seed=None, split="reference",
                        source="physionet", revision=revision, metrics=metrics)
    paths = plot_snr_curves_by_protocol([row("paper", -4.0), row("first", 1.5)], str(tmp_path))
    assert sorted(k for k in paths if not k.endswith("_svg")) == [
        "snr_curves_reference_physionet_first", "snr_curves_reference_physionet_paper"]
    assert all(os.path.exists(p) for p in paths.values())
    single = plot_snr_curves_by_protocol([row("paper", -4.0)], str(tmp_path / "one"))
    assert set(single) == {"snr_curves", "snr_curves_svg"}
