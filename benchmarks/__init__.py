"""Speed and scale measurements; each module prints one JSON object (`make bench` runs all)."""
