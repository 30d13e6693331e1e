"""Experiment tracking: a small Tracker interface with an MLflow implementation and a null one."""
