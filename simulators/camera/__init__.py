"""Camera simulators: a venue's cameras rendered from the scenario's crowd, with ground truth.

`render.CameraRenderer` draws one camera (textured ground, people as varied figures in depth order,
changing light) from `crowd.CrowdWindow`, the people around its view, kept at the scenario's zone
densities and gate flows. `sinks` write video files, ground-truth JSONL and training sets, or serve
HTTP MJPEG streams (`stream.MjpegServer`). `python -m simulators.camera` runs them; a live run
(`live`) also says where its streams are and what the true density of each zone is, by wall clock.
"""
