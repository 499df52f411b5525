"""Display names of every method id (network, network variant, classical baseline): one table.

Results rows, tables, figures, CSV files and the model summary all name a
method through `display_name`, so a network is spelled the same everywhere.
The final revision's DACNN and ACDAE differ from the paper's networks of the
same name, hence "(final)"; its own tables (ecg_jax/report/final.py) print the
labels of the reference's README instead.
"""

from __future__ import annotations

from typing import Iterable, Mapping

METHOD_DISPLAY_NAMES = {
    "fft": "FFT",
    "dwt": "DWT",
    "emd": "EMD",
    "unet": "U-Net",
    "dacnn": "DACNN",
    "acdae": "ACDAE",
    "ags_unet": "AGS-UNet",
    "ciadnet": "CIADNet",
    "dancer": "DANCER",
    "ciadnet_base": "Baseline (U-Net)",
    "ciadnet_channel": "+ Channel Shrink",
    "ciadnet_spatial": "+ Spatial Shrink",
    "drsn": "DRSN",
    "dacnn_final": "DACNN (final)",
    "acdae_final": "ACDAE (final)",
    "ralenet": "RALENet",
    "dance_final": "DANCE",
    "dance_final_se": "DANCE (ATNC & SE)",
    "dance_final_cbam": "DANCE (ATNC & CBAM)",
    "dance_final_eca": "DANCE (ATNC & ECA)",
    "dance_final_atnc": "DANCE (ATNC only)",
    "dance_final_arem": "DANCE (AREM only)",
}


def display_name(method: str, rows: Iterable[dict] = ()) -> str:
    """The method's name in tables. A method not named here (your own network, ecg_jax/models/external.py)
    takes the `network_label` its result rows carry (its class name), else its id."""
    if method in METHOD_DISPLAY_NAMES:
        return METHOD_DISPLAY_NAMES[method]
    return next((str(r["network_label"]) for r in rows if r.get("method") == method and r.get("network_label")),
                method)


# Where a built-in network's layout comes from, when not from reading the reference's code: a mark put
# beside its name in every generated table (ecg_jax/report/provenance.py), with the footnote below.
RECONSTRUCTED_MARK = "\u2020"      # dagger
COUNT_READING_MARK = "\u2021"      # double dagger
PROVENANCE_MARKS = {
    # rebuilt from the layout models.md describes in words ("DACNN (final): its layout")
    "dacnn_final": RECONSTRUCTED_MARK,
    # models.md, "DANCE (final)": the reference's HEAD keeps only the AREM version; these variants are
    # the reading of its components/ablation tables that their parameter counts pin
    "dance_final_se": COUNT_READING_MARK,
    "dance_final_cbam": COUNT_READING_MARK,
    "dance_final_eca": COUNT_READING_MARK,
    "dance_final_atnc": COUNT_READING_MARK,
    "dance_final_arem": COUNT_READING_MARK,
}
PROVENANCE_FOOTNOTES = {
    RECONSTRUCTED_MARK: f"{RECONSTRUCTED_MARK} reconstructed from models.md's description; the reference file "
                        "could not be read.",
    COUNT_READING_MARK: f"{COUNT_READING_MARK} read from a parameter count: the reference keeps only DANCE's AREM "
                        "version, so this variant is the layout models.md infers from the published parameter "
                        "count, not the reference's code.",
}


def marked_label(method: str, label: str) -> str:
    """`label` with the provenance mark of `method` (PROVENANCE_MARKS) after it, once; others unchanged."""
    mark = PROVENANCE_MARKS.get(method, "")
    return label if not mark or label.endswith(mark) else label + mark


def marked_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """{method: marked_label(method, label)} of a table's labels."""
    return {m: marked_label(m, label) for m, label in labels.items()}
