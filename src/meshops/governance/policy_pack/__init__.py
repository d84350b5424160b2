"""Policy packs shipped with meshops (YAML); `default.yaml` is loaded into every new home."""
