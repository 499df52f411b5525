"""Display names of every method id (network, network variant, classical baseline): one table.

Results rows, tables, figures, CSV files and the model summary all name a
method through `display_name`, so a network is spelled the same everywhere.
The final revision's DACNN and ACDAE differ from the paper's networks of the
same name, hence "(final)"; its own tables (ecg_jax/report/final.py) print the
labels of the reference's README instead.
"""

from __future__ import annotations

from typing import Iterable

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
