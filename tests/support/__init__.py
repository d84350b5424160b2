"""What several test packages share: the one CLI runner (`cli.run_cli`), git checkouts
(`git`), and builders of data-product documents (`products`). An area's own fixtures stay in
its package; a helper moves here once a second package needs it."""
