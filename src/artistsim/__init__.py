"""artistsim: learn which music tracks share an artist from sequences of audio feature frames.

Pipeline (data flows one way): data -> sampling -> models -> losses (train);
infer (embed) -> retrieval (search, rerank) -> metrics / submission.
"""

__version__ = "0.1.0"
