"""The operators' live map: a single page served by the API, with its assets (Leaflet vendored)."""
