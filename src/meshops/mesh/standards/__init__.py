"""The standards meshops reads and writes: ODCS 3.0.0-3.1.0 and ODPS 0.9-1.0.

This package holds the official JSON Schemas (data files, see README.md for their source and
licence) and the YAML reading shared by both standards (`documents`).
"""
