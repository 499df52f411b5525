"""Provenance marks in the generated tables (issue 33): DACNN (final), rebuilt from models.md's words, is
marked "†", DANCE's variants read from a parameter count "‡", each with its footnote under every table
(Markdown and HTML) that names them; tables without them carry neither."""

from ecg_jax import report
from ecg_jax.metrics import METRIC_NAMES
from ecg_jax.names import COUNT_READING_MARK, PROVENANCE_FOOTNOTES, RECONSTRUCTED_MARK
from ecg_jax.report.render import render_html, render_markdown
from ecg_jax.results import make_row

DAGGER, DOUBLE = RECONSTRUCTED_MARK, COUNT_READING_MARK


def row(method, noise, snr_in, seed, revision="final", split="inter_patient"):
    m = {k: 0.5 for k in METRIC_NAMES}
    m.update(snr_db=3.0 + snr_in / 10, rmse=0.3)
    return make_row(method=method, noise_type=noise, snr_db=snr_in, seed=seed, split=split,
                    source="physionet", metrics=m, revision=revision, epochs=80)


def final_rows():
    rows = [row(m, "emb", lv, 42) for m in ("unet", "dacnn_final", "dance_final") for lv in (-4, -2, 0, 2, 4)]
    rows += [row(m, nt, -4, 42) for m in ("unet", "dacnn_final") for nt in ("bw", "em", "ma")]
    rows += [row("dance_final_se", "emb", lv, 42) for lv in (-4, -2, 0, 2, 4)]
    return rows


def markdown_line(markdown: str, start: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(start))


def test_final_tables_mark_dacnn_final_as_reconstructed_and_variants_as_count_readings():
    assert RECONSTRUCTED_MARK == "\u2020" and COUNT_READING_MARK == "\u2021"
    tables = {t.kind: t for t in report.build_tables(final_rows())}
    dagger_note = PROVENANCE_FOOTNOTES[DAGGER]
    assert dagger_note.startswith(DAGGER) and "reconstructed from models.md's description" in dagger_note \
        and "the reference file could not be read" in dagger_note
    for kind in ("final_by_noise", "final_emb"):
        labels = [r.label for r in tables[kind].rows]
        assert f"DACNN{DAGGER}" in labels and "U-Net" in labels and "DANCE" in labels, labels
        assert tables[kind].footnotes == [dagger_note]
    components = tables["final_components"]
    assert [r.label for r in components.rows] == ["U-Net", f"+ ATNC & SE{DOUBLE}", "+ ATNC & AREM (DANCE)"]
    assert components.footnotes == [PROVENANCE_FOOTNOTES[DOUBLE]]
    # the ablation table has no result of a variant, but its note names them: the footnote follows the mark
    ablation = tables["final_ablation"]
    assert f"+ AREM{DOUBLE}" in ablation.note and ablation.footnotes == [PROVENANCE_FOOTNOTES[DOUBLE]]

    markdown = render_markdown(list(tables.values()))
    assert markdown_line(markdown, f"| DACNN{DAGGER} |").count("|") > 5        # beside its numbers
    assert markdown.count(dagger_note) == 2 and PROVENANCE_FOOTNOTES[DOUBLE] in markdown
    html = render_html(list(tables.values()))
    assert f"<td>DACNN{DAGGER}</td>" in html and f'<p class="note footnote">{dagger_note}</p>' in html.replace(
        "&#x27;", "'")
    assert f"<td>+ ATNC &amp; SE{DOUBLE}</td>" in html


def test_protocol_tables_mark_the_display_name_and_unmarked_tables_have_no_footnote():
    rows = [row(m, "emb", lv, s, revision="paper", split="reference")
            for m in ("unet", "dacnn_final") for lv in (-4, 0) for s in (0, 1)]
    (table,) = report.build_tables(rows)
    assert [r.label for r in table.rows] == ["U-Net", f"DACNN (final){DAGGER}"]
    assert table.footnotes == [PROVENANCE_FOOTNOTES[DAGGER]]
    assert PROVENANCE_FOOTNOTES[DAGGER] in render_markdown([table])
    (plain,) = report.build_tables([r for r in rows if r["method"] == "unet"])
    assert plain.footnotes == [] and DAGGER not in render_markdown([plain])
