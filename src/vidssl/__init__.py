"""vidssl: MoCo v2 on video frame pairs and region tracks, end to end."""
