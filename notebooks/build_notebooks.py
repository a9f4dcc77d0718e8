"""Writes the evcxr notebooks (notebooks/*.ipynb) from the cell lists in notebooks/cells/.

The .ipynb files are committed; edit `cells/nbNN_*.py` (one file per notebook, each defining NAME
and CELLS) and rerun `python3 notebooks/build_notebooks.py`, so that the notebooks' prose and code
stay reviewable as plain text.
"""
import glob
import importlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "cells"))


def notebook(cells):
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Rust (audiosae)", "language": "rust", "name": "audiosae-rust"},
            "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def main():
    for src in sorted(glob.glob(os.path.join(HERE, "cells", "nb*.py"))):
        mod = importlib.import_module(os.path.basename(src)[:-3])
        path = os.path.join(HERE, f"{mod.NAME}.ipynb")
        with open(path, "w") as f:
            json.dump(notebook(mod.CELLS), f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
