"""The staff pages about missing data: why a time point is missing (``reasons``), answers from a
paper form or a telephone interview (``entry``), and the compliance report (``compliance``)."""

from . import compliance, entry, reasons  # noqa: F401  (the views attach to the blueprint)
