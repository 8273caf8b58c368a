"""Parses Graphviz DOT files with pydot (CI): exits non-zero on a syntax error or an empty graph."""
import sys

import pydot

failed = False
for path in sys.argv[1:]:
    graphs = pydot.graph_from_dot_file(path)
    if not graphs:
        print(f"{path}: not a DOT graph")
        failed = True
        continue
    g = graphs[0]
    print(f"{path}: DOT OK, {len(g.get_nodes())} nodes, {len(g.get_edges())} edges")
sys.exit(1 if failed else 0)
