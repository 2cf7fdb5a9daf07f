"""Video ingest: camera readers (rtsp, http, files) that reconnect and sample N frames/s, and the
cross-camera queue that batches frames for the detector."""
