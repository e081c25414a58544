"""The NER SavedModel's signature (`ner_serving.NerServer.tag`) on raw text, untrained."""

import pytest
import tensorflow as tf

from modeling.tasks import ner, ner_serving
from tiny import tiny_config

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "went", "to", "paris"]
WORDS = ["the", "cat", "went", "to", "paris"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  vocab_file = tmp_path_factory.mktemp("ner_serving") / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  model = ner.NerModel(tiny_config(vocab_size=len(VOCAB)), 1)
  # One label, B-X: every word is an entity of its own, whose offsets are the word's.
  return ner_serving.NerServer(model, str(vocab_file), True, 16, 8, ["B-X"])


@pytest.mark.parametrize("text", [
    "the cat went to paris", "the cat \x00 went to paris", "\x00the cat went to paris",
    "the ca\x00t went\x00 to paris\x00", "\x00\x00 the cat went to paris \x00"])
def test_a_nul_is_dropped_as_the_tokenizer_drops_it(server, text):
  """tensorflow-text's split stops at a NUL: the words are those of the text without
  its NULs (as `--do_predict` reads those words), and the offsets index the text."""
  outputs = server.tag(tf.constant([text]))
  num_words, num_entities = int(outputs["num_words"][0]), int(outputs["num_entities"][0])
  assert outputs["tags"][0, :num_words].numpy().tolist() == [b"B-X"] * len(WORDS)
  spans = [text[start:end] for start, end in zip(outputs["entity_start"][0, :num_entities],
                                                 outputs["entity_end"][0, :num_entities])]
  assert [span.replace("\x00", "") for span in spans] == WORDS
  assert spans[0].startswith("t") and spans[-1].endswith("s")


def test_texts_of_one_batch_keep_their_own_offsets(server):
  texts = ["\x00", "", "\x00\x00cat to", "paris\x00 the"]
  outputs = server.tag(tf.constant(texts))
  assert outputs["num_words"].numpy().tolist() == [0, 0, 2, 2]
  spans = [[text[start:end] for start, end in zip(outputs["entity_start"][i, :n],
                                                  outputs["entity_end"][i, :n])]
           for i, (text, n) in enumerate(zip(texts, outputs["num_entities"].numpy()))]
  assert spans == [[], [], ["cat", "to"], ["paris", "the"]]
