"""vidssl: MoCo v2 on video frame pairs and region tracks, end to end."""
import logging

# A library stays silent unless its caller configures logging; stage functions log to `log` or their module's logger.
logging.getLogger("vidssl").addHandler(logging.NullHandler())
