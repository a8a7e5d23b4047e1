"""artistsim: learn which music tracks share an artist from sequences of audio feature frames.

One wing (sub-package) per stage of the data's journey; imports point one way only:

    cli, demo -> catalogue, evaluation, training -> embed -> models, search, data -> config, atomic

- `data/`: what comes in (the competition layout, splits, the packed store, validation,
  the synthetic generator).
- `models/`: encoders and heads.
- `training/`: how a model learns (sampling, augmentation, losses, the training loop).
- `embed`: a trained run -> embeddings.
- `search/`: embeddings -> ranked lists (exact search, FAISS indexes, rerank).
- `evaluation/`: nDCG@100, baselines, the report, submissions.
"""

__version__ = "0.1.0"
