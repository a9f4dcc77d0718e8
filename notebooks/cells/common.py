"""Shared pieces of every notebook: the prelude (one :dep set, so evcxr builds audiosae once)
and the cell constructors."""

# Every notebook opens with one cell: the same dependency set, so evcxr builds audiosae once and
# reuses it (the kernel launcher gives every kernel in turn the same build directory, slot-0),
# panics failing the run, and the parameters.
# One cell, not two: each cell costs evcxr a compile and a rust-analyzer pass (about 7 s here).
PRELUDE = """:preserve_vars_on_panic 0
:dep audiosae = { path = "../core" }
:dep tch = "=0.24.0"
:dep anyhow = "1"
use audiosae::notebook::{NotebookParams, show_png, show_html, audio_html};
use anyhow::Result;
let p = NotebookParams::load()?;
std::fs::create_dir_all(&p.work_dir)?;"""


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def code(text):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text.strip("\n")}
