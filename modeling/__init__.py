"""bert-tf2: Google's original BERT on TensorFlow 2, with the TF1 variable names."""

from modeling.config import BertConfig
from modeling.heads import ClassifierHead, MaskedLMHead, NextSentenceHead
from modeling.model import BertModel

__all__ = ["BertConfig", "BertModel", "ClassifierHead", "MaskedLMHead", "NextSentenceHead"]
