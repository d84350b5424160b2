"""Pipelines that `meshops init` copies into a repository (importable from here too)."""
