# `make lab` only (its IPYTHONDIR): a chapter's cell shows the numbers it glues as one Series, up to
# ~170 rows (chapter 06); live readers see them all, not pandas' first and last five. The book's
# build keeps pandas' defaults (those cells' outputs are not on its pages).
import pandas as pd

pd.set_option("display.max_rows", 500)
