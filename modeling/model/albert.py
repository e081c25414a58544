"""ALBERT's encoder layout (Lan et al. 2019, google-research/albert), built from BERT's blocks.

An ALBERT config (`BertConfig.is_albert`) makes `BertModel` differ from BERT in
three places, with ALBERT's TF1 variable names so that Google's ALBERT
checkpoints load by name and ours load into ALBERT's code:

- the embeddings have width E = `embedding_size` (`bert/embeddings/...` [V, E],
  [type_vocab, E], [max_pos, E], LayerNorm over E), projected to H by
  `bert/encoder/embedding_hidden_mapping_in` [E, H] when E != H;
- the layers share parameters: `num_hidden_groups` groups G of `inner_group_num`
  blocks each, `bert/encoder/transformer/group_g/inner_group_i/...`; layer l runs
  the blocks of group int(l / L * G) in order, so the encoder applies L * I blocks;
- each block is BERT's `TransformerLayer` (same numerics) under ALBERT's names:
  `attention_1/self/{query,key,value}`, `attention_1/output/dense`, `LayerNorm`,
  `ffn_1/intermediate/dense`, `ffn_1/intermediate/output/dense`, `LayerNorm_1`.

The heads keep BERT's names: the masked-LM transform maps H to E before the
tied [V, E] output embedding, and `cls/seq_relationship` predicts sentence order
(label 0: the segments in their order, 1: swapped) on the pooled output.
"""

from modeling.model.layers import Dense

# Where an ALBERT block has the parts of a `model.TransformerLayer`, relative to
# its scope (`model.BERT_LAYER_NAMES` has BERT's).
ALBERT_LAYER_NAMES = {
    "attention": "attention_1/self",
    "attention_output": "attention_1/output/dense",
    "attention_layer_norm": ("", "LayerNorm"),
    "intermediate": "ffn_1/intermediate/dense",
    "output": "ffn_1/intermediate/output/dense",
    "output_layer_norm": ("", "LayerNorm_1"),
}

EMBEDDING_PROJECTION = "bert/encoder/embedding_hidden_mapping_in"


def group_index(layer, config):
  """The group whose parameters layer `layer` uses, computed as ALBERT does
  (int(l / L * G) in floating point)."""
  return int(layer / config.num_hidden_layers * config.num_hidden_groups)


def embedding_projection(config):
  """`bert/encoder/embedding_hidden_mapping_in`, Dense E -> H, or None when E == H."""
  if config.embedding_size == config.hidden_size:
    return None
  return Dense(EMBEDDING_PROJECTION, config.embedding_size, config.hidden_size,
               config.initializer_range)


def shared_blocks(config, make_block):
  """The blocks the encoder applies in order, sharing ALBERT's groups.

  Args:
    config: an ALBERT `BertConfig`.
    make_block: `model.TransformerLayer`, called (scope, config, names).

  Returns:
    A list of num_hidden_layers * inner_group_num blocks; the blocks of one
    group are the same objects wherever the group is used.
  """
  groups = {}  # Only groups some layer uses have variables, as in ALBERT's graph.
  blocks = []
  for layer in range(config.num_hidden_layers):
    group = group_index(layer, config)
    if group not in groups:
      groups[group] = [make_block(f"bert/encoder/transformer/group_{group}/inner_group_{i}",
                                  config, ALBERT_LAYER_NAMES)
                       for i in range(config.inner_group_num)]
    blocks.extend(groups[group])
  return blocks
