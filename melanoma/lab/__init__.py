"""The lab: code that helps decide what ships (experiments, robustness checks), never imported by
the product (the app, `predict`, `train`)."""
