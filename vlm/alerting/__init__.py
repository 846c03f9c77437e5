"""Alerts: the conditions rules watch, the pass that fires and clears them, and delivery."""
