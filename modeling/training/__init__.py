"""Training: the two-level loop on tf.distribute with checkpoints and resumption (`loop`),
the original's AdamWeightDecay and LAMB with their schedule (`optimization`), and the choice
of distribution strategy (`distribution`)."""
