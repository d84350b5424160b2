"""`meshops demo`: the whole reference architecture end to end on a fresh embedded home."""
