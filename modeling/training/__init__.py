"""Training on tf.distribute: the host loop (`loop`) around the replica step (`steps`),
the run's checkpoints with retention and resume (`run_checkpoints`), prediction over
arrays (`array_predictor`), the original's AdamWeightDecay and LAMB with their schedule
(`optimization`), and the choice of distribution strategy (`distribution`)."""
