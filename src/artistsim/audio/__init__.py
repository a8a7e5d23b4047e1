"""Audio in, frame features out: decoding, the front ends (dsp descriptor, musicnn) and featurize.

`decode` reads and resamples a file's central fragment, `inputs` finds and checks the
audio a user points at, `descriptor` and `musicnn` (with `tf_bundle`, its checkpoint
reader) turn a fragment into windows of features, `frontends` names them, and `featurize`
(with `worker`) writes a dataset in the competition layout with its provenance record.
The wing depends on `data` (ids, paths, the record) and never the other way.
"""
