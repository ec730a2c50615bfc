"""Scheduling: the study schedule file and its date arithmetic, and each patient's time points
(creating them, opening and closing their windows, their links)."""
