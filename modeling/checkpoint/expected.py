"""The variables a task's model holds in the original layout, built from the config.

  expected_variables(config, task, num_labels) -> {name: (shape, dtype)}
  fresh_heads(task)                            -> regexes a pretrained checkpoint may lack
"""

import tensorflow as tf

from modeling.checkpoint.layout import variable_entries
from modeling.model.heads import ClassifierHead, MaskedLMHead, NextSentenceHead, SquadHead
from modeling.model.model import BertModel

TASKS = ("encoder", "pretraining", "classifier", "squad", "ner")

# The heads each task's model puts on the encoder (NER's per-token classifier has
# the sentence classifier's names).
_HEADS = {"encoder": (), "pretraining": (MaskedLMHead, NextSentenceHead),
          "classifier": (ClassifierHead,), "squad": (SquadHead,), "ner": (ClassifierHead,)}


def expected_variables(config, task=None, num_labels=2):
  """{name: (shape tuple, tf.DType)} of the variables a task's model creates.

  Args:
    config: a BertConfig.
    task: one of TASKS, or None for every variable the layout holds: the
      encoder, the pooler and each head.
    num_labels: outputs of the classifier head.
  """
  heads = _HEADS[task] if task else (MaskedLMHead, NextSentenceHead, ClassifierHead, SquadHead)
  with tf.device("/cpu:0"):
    model = BertModel(config)
    modules = [model]
    for head in heads:
      if head is MaskedLMHead:
        modules.append(head(config, model.embedding_table))
      elif head is ClassifierHead:
        modules.append(head(config, num_labels))
      else:
        modules.append(head(config))
  return variable_entries(modules)


def fresh_heads(task):
  """Regexes of the variables of a task's heads: what a pretrained checkpoint lacks."""
  return tuple(head.VARIABLES for head in _HEADS[task])
