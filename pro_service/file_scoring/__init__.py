"""Scoring a file of answers collected elsewhere (``pro-service score``): a CSV with one row per
response set, scored by the instrument engine's rules and written back with a column per score.

Plain Python, no Flask; only the command line uses it.
"""

from .csv_scoring import CsvProblem, CsvScoringError, CsvScoringResult, score_csv

__all__ = ["CsvProblem", "CsvScoringError", "CsvScoringResult", "score_csv"]
