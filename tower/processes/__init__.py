"""One module per platform process run alone (stack mode): `python -m tower.processes.NAME`."""
