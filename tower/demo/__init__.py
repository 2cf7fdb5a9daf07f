"""The demo behind `make demo`: a small venue, its settings and a reading generator."""
