"""Runtime implementations of the sources behind ``edge.interfaces``."""
