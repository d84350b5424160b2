"""The model registry (C6): registered models, versions, flavors, signatures and aliases."""
