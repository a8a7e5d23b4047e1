"""What comes in: the competition's layout read and checked, splits, the packed store, synthetic data.

`layout` reads meta files and feature files; `splits` turns them into labelled splits,
crops and folds; `store` packs a split into one memory map; `validate` checks a data
directory; `synth` writes synthetic datasets in the same layout.
"""
