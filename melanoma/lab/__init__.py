"""The lab: what helps decide what ships, never imported by the product (the app, `train`,
`evaluate`, `predict`, `extras`). Short-run experiments, weight averaging and ensembles, the
benchmark, the robustness suite, paired comparisons of two bundles, and the refusal measurements."""
