"""Syntax check of PowerShell scripts with tree-sitter's PowerShell grammar.

    kit-check.py FILE.ps1...

Prints each file's verdict and every ERROR or MISSING node (line:column),
exits 1 if any file has one. This is a grammar, not Microsoft's parser: it
catches unbalanced braces, brackets and parentheses, unterminated strings and
here-strings, dangling operators, a catch without try and PowerShell 7-only
syntax, not semantic errors; it wrongly rejects a few valid forms (several
switch clauses on one line, labelled break/continue), which acceptance.ps1
does not use.
"""
import sys

import tree_sitter_powershell
from tree_sitter import Language, Parser

PARSER = Parser(Language(tree_sitter_powershell.language()))


def problems(node, found):
    if node.is_error or node.is_missing:
        line, column = node.start_point
        kind = "missing " + node.type if node.is_missing else "syntax error"
        found.append(f"{line + 1}:{column + 1}: {kind} near {node.text[:40]!r}")
    if node.has_error:
        for child in node.children:
            problems(child, found)
    return found


def main(paths):
    failed = False
    for path in paths:
        with open(path, "rb") as f:
            source = f.read()
        if source.startswith(b"\xef\xbb\xbf"):
            source = source[3:]
        found = problems(PARSER.parse(source).root_node, [])
        print(f"{path}: {'parsed' if not found else 'does not parse'}")
        for problem in found:
            print("  " + problem)
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
