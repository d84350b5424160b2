"""The small core every area builds on: config, URNs, errors, database, blobs, events, lineage."""
