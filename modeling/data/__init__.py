"""From text to model inputs: the WordPiece, SentencePiece and in-graph tokenizers, files
and TFRecords, and each task's examples and features (pretraining, classifier, SQuAD, NER)."""
