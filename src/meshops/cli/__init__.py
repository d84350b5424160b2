"""The command line: thin commands over the SDK (`meshops.connect`)."""
