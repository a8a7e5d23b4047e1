"""`python -m artistsim ...` (and `torchrun -m artistsim train ...`) run the CLI."""

from artistsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
