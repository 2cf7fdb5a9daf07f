"""Scoring detectors against labelled windows: NAB-style windowed score, per-type precision and
recall, time to detect, and the evaluation report."""
