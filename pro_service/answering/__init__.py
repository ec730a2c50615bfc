"""Answering: a patient's way through a time point by link, storing answers, completing and
scoring it, and re-scoring stored answers."""
