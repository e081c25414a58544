"""One module per task on top of BertModel: pretraining, classification, SQuAD, NER,
distillation and feature extraction, with their losses, metrics and SavedModel exports."""
