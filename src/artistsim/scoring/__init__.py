"""The linear-Gaussian scorers and pooled statistics, in one wing."""
