"""Crowd counting, density and flow from video, per zone, on the ground.

Pipeline (one process): `ingest.video` readers decode camera streams and sample N frames/s into a
cross-camera queue; `VisionPipeline` runs a person-detector plugin (`detectors/`) on batches across
cameras and, where the crowd is dense, the density-map model (`density/`); `CameraCounter` places
feet on the ground through each camera's homography (`homography.py`, `view.py`), counts per zone
and tracks people across gate lines (`tracking.py`); `ZoneAggregator` folds every camera into one
`ZoneState` per zone per second (count, density, Fruin level of service, flow, confidence), which
`ZoneStatePublisher` sends on the bus topic 'zone_state'. Only those aggregates leave the pipeline.
`service.VisionService` runs it on a venue's cameras (`python -m tower.vision`); `live_run` runs
it against live simulated cameras and scores the densities against the scenario's truth.
"""
