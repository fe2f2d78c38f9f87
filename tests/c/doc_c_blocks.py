# SPDX-License-Identifier: MIT
"""Writes the C blocks of one section of a Markdown file, verbatim and in
order, as one C file (with #line directives pointing at the Markdown), so
that a test can compile and run the code a document shows.

The section is the one holding a line `<!-- MARKER ... -->`; its C blocks
are every ```c fence from there to the next heading of level 1 or 2.

usage: doc_c_blocks.py DOC.md MARKER OUT.c"""
import sys


def main():
    doc, marker, out = sys.argv[1:]
    lines = open(doc).read().split("\n")
    start = next((i for i, l in enumerate(lines)
                  if l.startswith("<!--") and marker in l), None)
    if start is None:
        sys.exit(f"doc_c_blocks.py: no '<!-- ... {marker} ...' line in {doc}")
    code, i, blocks = [], start + 1, 0
    while i < len(lines) and not lines[i].startswith(("# ", "## ")):
        if lines[i].strip() == "```c":
            code.append(f'#line {i + 2} "{doc}"')
            i += 1
            while lines[i].strip() != "```":
                code.append(lines[i])
                i += 1
            blocks += 1
        i += 1
    if blocks == 0:
        sys.exit(f"doc_c_blocks.py: no ```c block after the marker in {doc}")
    with open(out, "w") as f:
        f.write(f"/* Generated from {doc}: {blocks} blocks. Do not edit. */\n")
        f.write("\n".join(code) + "\n")


if __name__ == "__main__":
    main()
