"""The feature store: feature views on data products, point-in-time training sets, online
stores and materialization (issue 5)."""
