# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/troubleshooting.md is generated from the code by scripts/gen-troubleshooting.py and must not drift: a new or
changed error message in plugins/ or roles/ without a regenerated document fails here."""

from __future__ import annotations

import ast
import difflib
import importlib.util

from .conftest import ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("gen_troubleshooting", ROOT / "scripts" / "gen-troubleshooting.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_doc_equals_generator_output():
    generated = _generator().generate()
    current = (ROOT / "docs" / "troubleshooting.md").read_text()
    if current != generated:
        diff = "".join(difflib.unified_diff(current.splitlines(True), generated.splitlines(True),
                                            "docs/troubleshooting.md", "scripts/gen-troubleshooting.py"))
        raise AssertionError("docs/troubleshooting.md is out of date; run scripts/gen-troubleshooting.py\n%s" % diff[:6000])


def test_every_error_call_with_a_literal_message_is_documented():
    """Independent count: each literal first argument of an error class call appears in the document."""
    gen = _generator()
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    missing = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and gen._name(node.func) in gen.ERROR_CLASSES and node.args:
                for cand in gen._candidates(node.args[0]):
                    text = gen.render(cand)
                    if text and text.strip() != gen.PLACEHOLDER and " ".join(text.split()) not in doc:
                        missing.append("%s: %s" % (path.relative_to(ROOT), text))
    assert not missing, "messages not in docs/troubleshooting.md: %s" % missing


def test_placeholders_are_shown_and_every_message_has_cause_and_fix():
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert "%s" not in doc.replace("`%s`", "") and "%d" not in doc and "%r" not in doc
    entries = doc.split("\n#### ")[1:]
    assert len(entries) > 50
    bare = [e.splitlines()[0] for e in entries if "- cause" not in e]
    assert not bare, "messages without cause/fix: %s" % bare
