"""Search strategies, one module per method; each registers itself in nasforge.registry.STRATEGIES. The
machinery they share (the strategy interface, the one-shot loop, path sampling, the multi-trial loop and the
evolution engine) lives in `nasforge.engine`."""
