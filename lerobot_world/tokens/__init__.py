"""World tokens: the image encoders and codebook (`tokenizer`, saved inside a policy), k-means, the token table
a dataset's frames map to (`table`), and the `lerobot-world tokenize` command that writes it (`tokenize`)."""
