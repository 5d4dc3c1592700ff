"""``python -m colorlib ...``: the command line of :mod:`colorlib.cli`."""

from colorlib.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
