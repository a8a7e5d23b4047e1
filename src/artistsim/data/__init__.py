"""What comes in: the competition's layout read and checked, splits, the packed store.

`layout` reads meta files and feature files; `splits` turns them into labelled splits,
crops and folds; `store` packs a split into one memory map; `validate` checks a data
directory; `ids` is the one id check, `paths` the one path policy, `arrays` the one
array check; `provenance` is the record of which front end made a folder's features.
Synthetic data lives in `artistsim.synth`, audio in `artistsim.audio`: both write this
layout and import from here, never the other way.
"""
