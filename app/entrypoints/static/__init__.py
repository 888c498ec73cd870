"""The dashboard page, shipped in the package (it needs nothing from the internet)."""
