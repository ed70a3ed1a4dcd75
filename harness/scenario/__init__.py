"""Scenario files: the schema (schema.py), the loader (loader.py), the model (model.py)."""

from harness.scenario.errors import ScenarioError
from harness.scenario.loader import load_file, load_text
from harness.scenario.model import Scenario

__all__ = ["Scenario", "ScenarioError", "load_file", "load_text"]
