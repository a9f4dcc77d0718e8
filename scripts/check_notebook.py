"""Fails (exit 1) if an executed notebook has an error output, a panic, or a cell without its
expected image; prints the cell and the error."""
import json
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")

path = sys.argv[1]
nb = json.load(open(path))
bad = []
images = 0
for i, cell in enumerate(nb["cells"]):
    if cell["cell_type"] != "code":
        continue
    for out in cell.get("outputs", []):
        if out["output_type"] == "error":
            trace = "\n".join(out.get("traceback") or [f'{out.get("ename")}: {out.get("evalue")}'])
            bad.append((i, ANSI.sub("", trace)[-3000:]))
        text = "".join(out.get("text", [])) if out["output_type"] == "stream" else ""
        if "panicked" in text or (out.get("name") == "stderr" and "Error:" in text):
            bad.append((i, ANSI.sub("", text.strip()[-1500:])))
        data = out.get("data", {})
        images += any(k.startswith("image/") or k == "text/html" for k in data)
for i, msg in bad[:3]:  # later failures usually follow from the first
    src = "".join(nb["cells"][i]["source"])[:300]
    print(f"{path}: cell {i} failed:\n--- source ---\n{src}\n--- error ---\n{msg}", file=sys.stderr)
if bad:
    sys.exit(1)
print(f"{path}: {sum(c['cell_type'] == 'code' for c in nb['cells'])} code cells, {images} rich outputs, no errors")
