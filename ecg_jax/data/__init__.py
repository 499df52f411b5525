"""The data side, one stage per module:

  records (records.py, synthetic.py; download.py fetches PhysioNet) -> windows (windows.py: "paper"/"first"
  draws; final_revision.py: the final revision's exact draws) -> prepare.py (cut,
  cache.py) -> prepared.py (clean windows + noise segment bank; every (noise
  type, SNR) dataset mixed on demand by noise.py's recipe) -> card.py (the data
  card) and export.py (arrays for other frameworks).
"""

from ecg_jax.data.card import DATA_CARD_NAME, data_card, dataset_summaries, summary_lines, write_data_card
from ecg_jax.data.export import prepare_and_write_data_card
from ecg_jax.data.prepare import check_dataset, prepare_data, resolve_source
from ecg_jax.data.prepared import PreparedData, SegmentBank, WindowSet

__all__ = ["DATA_CARD_NAME", "PreparedData", "SegmentBank", "WindowSet", "check_dataset", "data_card",
           "dataset_summaries", "prepare_and_write_data_card", "prepare_data", "resolve_source",
           "summary_lines", "write_data_card"]
