"""The network: `BertConfig`, `BertModel` and the layers, attention, position embeddings,
output heads and ALBERT layout it is built from, with the original TF1 variable names."""
