"""Measuring, not product: scripts and picture sets that measure the model and its extras. Nothing in
the app or the commands users run imports from here."""
