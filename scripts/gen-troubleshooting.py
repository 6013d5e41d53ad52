#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generate docs/troubleshooting.md from the code: every error message the collection can give, with cause and fix.

    scripts/gen-troubleshooting.py            write docs/troubleshooting.md
    scripts/gen-troubleshooting.py --check    exit 1 (and show a diff) when the checked-in file is out of date
    scripts/gen-troubleshooting.py --stdout   print the document

Sources (parsed with `ast`, never imported):
  * plugins/**/*.py: string literals passed to HsmError(...), KeyVaultError(...), KeySpecError(...), ByokFormatError(...),
    VendorError(...), AnsibleFilterError(...), fail_json(msg=...), <module>.fail(...), the msg of a result built with
    failed=True, and the strings the `explain` functions return; `%s`-style, `{}` and f-string placeholders are shown as <...>;
  * the _FIX table of plugins/module_utils/pkcs11_session.py (PKCS#11 return codes) and PERMISSION_HINT of
    plugins/module_utils/azure_errors.py (what to grant for a 403);
  * roles/*/tasks/*.yml: the msg of ansible.builtin.fail and the fail_msg of ansible.builtin.assert ({{ ... }} as <...>).

Cause and fix: a message of the form "<what went wrong>; <what to do>" is split at its first "; ". Where the message
alone is not enough, NOTES below (keyed by a stable prefix of the rendered message) gives the cause and the fix by hand.
tests/e2e/faults/test_troubleshooting_doc.py fails when the checked-in document differs from this script's output.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "troubleshooting.md"
PLACEHOLDER = "<...>"

ERROR_CLASSES = {"HsmError", "KeyVaultError", "KeySpecError", "ByokFormatError", "VendorError", "AnsibleFilterError", "AnsibleActionFail",
                 "LockError", "BundleError", "ImportOutcomeUnknown", "KeyAttributeError", "VaultUrlError", "ByokError"}
FAIL_METHODS = {"fail"}  # module.fail(...), hsm.fail(...), kv.fail(...), self.fail(...)
# the inventory checks: checker.problem(path, message) and Problem(host, path, message)
PROBLEM_CALLS = {"problem": 1, "Problem": 2}

# Hand-written cause / fix for messages that do not explain themselves, keyed by a stable prefix of the rendered message
# (the longest matching prefix wins). Keep the prefixes short enough to survive rewording of the tail.
NOTES = {
    "<...>: <...>": (
        "Before any KEK or vault write, the transfer role contacts the HSM of every host with keys (hsm_keygen in check "
        "mode: the PKCS#11 library loads, the token is found, the PIN logs in, the mechanisms are listed and the wrap path "
        "is proved). This host's HSM could not be used; the message after the host names the inventory variable "
        "(byok_pkcs11_module, byok_user_pin, byok_token_label, byok_hsm_vendor, ...) and the HSM's answer.",
        "Fix the variable the message names and run again: nothing was created in any vault or HSM, on any host."),
    "PKCS#11 <...> failed: ": (
        "The PKCS#11 library returned an error code (CKR_...) while doing the named action. The part after 'failed:' is "
        "the explanation of that code, from the table 'PKCS#11 return codes' below when the code is known.",
        "Act on the explanation; for an unknown code, look it up in the HSM vendor's PKCS#11 documentation."),
    "the token answered <...>": (
        "A PKCS#11 return code the collection has no explanation for.",
        "Look the code up in the vendor's PKCS#11 documentation and the HSM logs; if it is common, open an issue so "
        "that it gets an entry in _FIX."),
    "authentication to <...> failed during <...>": (
        "azure-identity could not get a token for the vault: wrong client id, secret, tenant, or an authority host "
        "(cloud_environment) that is not the one of the vault's tenant. The AADSTS code in the message names it.",
        "AADSTS7000215: fix the secret (AZURE_SECRET); AADSTS700016: fix client_id or tenant; AADSTS90002: fix the tenant; "
        "otherwise check all four options (or the AZURE_* variables AWX injects)."),
    "<...> refused the access token during <...>": (
        "The vault got a token but rejected it (401): the token was issued by another tenant or cloud than the vault's.",
        "Use the tenant that owns the vault and the matching cloud_environment."),
    "the identity<...> may not <...> in <...> (403 <...>)": (
        "The identity authenticated, but the vault's access policy or RBAC does not allow the operation.",
        "Grant the permission the message names (see 'Permissions for a 403' below), wait for RBAC to propagate "
        "(up to a few minutes), run again."),
    "<...>: <...> not found in <...>": (
        "The vault has no key of that name (or version).",
        "Check the name and the vault_url; for a KEK, let byok_kek_fetch create it (create: true)."),
    "<...> in <...> conflicts with the vault state (409)": (
        "The vault refused the operation because of the key's state, for example an operation on a key being deleted.",
        "Read the service message in the text; wait for a running deletion or recovery to finish, then run again."),
    "<...> in <...> was throttled (429) and retries ran out": (
        "Key Vault throttles a vault or subscription that sends too many requests; the collection honoured Retry-After "
        "and gave up after its retries.",
        "Run again later, lower forks, or spread the transfer over several runs. A re-run is safe: it skips keys the "
        "vault already holds."),
    "<...> in <...> failed on the service side (<...> <...>) after retries": (
        "Key Vault answered 5xx several times.",
        "Run again later (a re-run never imports a key twice); check https://status.azure.com when it persists."),
    "<...> in <...> was refused (<...> <...>): <...>": (
        "The vault answered with an HTTP error the collection has no special message for (often 400 BadParameter).",
        "Read the service message at the end; for 400 on import, check key_type/key_size/curve against the .byok "
        "and that the blob was wrapped under this vault's KEK."),
    "<...> is unreachable during <...>": (
        "No TCP/TLS connection to the vault: wrong URL or port, DNS, a proxy (HTTPS_PROXY), or a firewall in between.",
        "Check vault_url (scheme and host only), name resolution and the proxy settings of the controller."),
    "<...> closed the connection during <...>": (
        "The connection dropped before the answer arrived. For an import the vault may have stored the key anyway; the "
        "collection checks for that before it sends the import again, and never imports twice.",
        "Run again; the run skips keys the vault already holds."),
    "<...> answered with an authentication challenge for another resource": (
        "The vault's 401 challenge names a resource whose domain does not match the vault host (a proxy, a private "
        "endpoint with another name, or a wrong vault_url).",
        "Use the vault's real URI (https://NAME.vault.azure.net or https://NAME.managedhsm.azure.net)."),
    "<...> in <...> failed: <...>": (
        "An unexpected error from azure-core / azure-identity.",
        "Read the text at the end; run with -vvv for the module's traceback and open an issue if it is not clear."),
    "import of key <...> in <...>: a new version appeared that is not the HSM key": (
        "While this run retried an import, a version of the key appeared that is not this HSM key: another run (or a "
        "person) imported or created the same key name at the same time.",
        "Inspect the versions (keyvault_key_info, az keyvault key list-versions); disable the unwanted version; run "
        "one transfer at a time per vault key."),
    "<...> of <...> keys failed: <...>": (
        "Several items of keys were handled in one module run; the message joins the messages of the failed items "
        "with ' | '.",
        "Fix each item's message; the items that did not fail were handled (see the keys result)."),
    "Failed to import the required Python library": (
        "A Python library the module needs is missing in the interpreter Ansible uses on that host.",
        "Install it (requirements.txt) for that interpreter, or point ansible_python_interpreter at the Python that "
        "has it."),
    "python-pkcs11 is not installed on this host": (
        "The HSM-side modules need python-pkcs11 on the HSM host.",
        "pip install python-pkcs11 (see requirements.txt) for the interpreter Ansible uses on the HSM host."),
    "the token reported success but key <...> cannot be found afterwards": (
        "C_GenerateKeyPair returned CKR_OK but a search by label and id finds nothing: a token that does not store "
        "token objects (read-only or session-only slot) or an HSM policy that hides the new key.",
        "Check the partition/slot policy and that the user may create token objects; then run again."),
    "keys lists a label twice": (
        "Two items of keys have the same label, which would be one HSM object.",
        "Give each key its own label."),
    "<...> '<...>' is not a valid Key Vault key name": (
        "Key Vault key names (vault keys and KEKs) allow only 1-127 characters of 0-9, a-z, A-Z and '-'; HSM labels "
        "may hold more (dots, underscores, spaces), so a label cannot always be the vault name.",
        "Give the key a vault name of its own (name in byok_keys) and keep the HSM label in label."),
    "the public key uses curve <...>, which Azure Key Vault does not accept": (
        "The key's curve (from the HSM or the vault) is none of P-256, P-384, P-521, P-256K.",
        "Generate the target key on an accepted curve (hsm_keygen curve)."),
    "unsupported public key type <...>": (
        "A public key that is neither RSA nor EC reached the fingerprint code (for example an Ed25519 or DSA key "
        "under the label).",
        "Use an RSA or EC key (AES keys are identified by their KCV); remove or relabel the other object."),
    "id must be hex digits": (
        "The id option (CKA_ID) is given in hex; it contains other characters.",
        "Write the CKA_ID as hex digits, e.g. 0a1b2c (pkcs11-tool --list-objects shows it this way)."),
    "parallel must be between 1 and <...>": (
        "keyvault_import and keyvault_key_info send at most 16 requests to a vault at once (the role's byok_import_parallel "
        "and byok_vault_parallel).",
        "Set parallel to a value from 1 to 16 (lower it when the vault throttles with 429)."),
    "byok_keys item <...> (vault <...>): <...>": (
        "A key of byok_keys asks for a type, size or curve the target vault does not accept (the last part says which).",
        "Fix key_type/key_size/curve of that item, or send it to a vault that accepts it (oct keys: Managed HSM)."),
    "<...> key(s) did not move:": (
        "At least one key of the run was not transferred; the report play fails the run after it has printed the table "
        "and written the audit manifest. Each part after the colon is host / vault / key / reason.",
        "Fix each reason (its own entry on this page) and run again; keys that are already in place are skipped."),
    "every item of keys needs": (
        "An item of the keys option lacks a required field.",
        "Add the field to every item."),
}


# ------------------------------------------------------------------------------------------------------------------
# Rendering expressions as message text
# ------------------------------------------------------------------------------------------------------------------

_PCT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_BRACES = re.compile(r"\{[^{}]*\}")


def _pct(text: str) -> str:
    return _PCT.sub(lambda m: "%" if m.group(0) == "%%" else PLACEHOLDER, text)


def _missing_required_lib(lib: str) -> str:
    return ("Failed to import the required Python library (%s) on %s's Python %s. Please read the module documentation "
            "and install it in the appropriate location. If the required library is installed, but Ansible is using the "
            "wrong Python interpreter, please consult the documentation on ansible_python_interpreter"
            % (lib, PLACEHOLDER, PLACEHOLDER))


def render(node):
    """The message text of an expression, or None when it holds no literal text of its own."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = render(node.left)
        return _pct(left) if left is not None else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = render(node.left), render(node.right)
        if left is None and right is None:
            return None
        return (left if left is not None else PLACEHOLDER) + (right if right is not None else PLACEHOLDER)
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        base = render(node.func.value)
        return _BRACES.sub(PLACEHOLDER, base) if base is not None else None
    if isinstance(node, ast.Call) and _name(node.func) == "missing_required_lib" and node.args:
        lib = render(node.args[0])
        return _missing_required_lib(lib) if lib is not None else None
    if isinstance(node, ast.IfExp):
        # both branches are messages of their own; the caller splits them
        return None
    return None


def _name(func) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _candidates(node):
    """Message expressions of an argument (both branches of a conditional expression)."""
    if isinstance(node, ast.IfExp):
        return _candidates(node.body) + _candidates(node.orelse)
    return [node]


class Collector(ast.NodeVisitor):
    def __init__(self):
        self.found = []  # (message, kind, where)
        self.scope = []

    def _where(self):
        return ".".join(self.scope) or "<module>"

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _add(self, expr, kind):
        for cand in _candidates(expr):
            text = render(cand)
            # a message made only of other messages ('%s; %s') says nothing of its own
            if text is not None and re.search(r"[A-Za-z]", text.replace(PLACEHOLDER, "")):
                self.found.append((" ".join(text.split()), kind, self._where()))

    def visit_Call(self, node):
        name = _name(node.func)
        if name in ERROR_CLASSES and node.args:
            self._add(node.args[0], name)
        elif name == "fail_json":
            for kw in node.keywords:
                if kw.arg == "msg":
                    self._add(kw.value, "fail_json")
        elif name in FAIL_METHODS and isinstance(node.func, ast.Attribute) and node.args:
            self._add(node.args[0], "module.fail")
        elif name in PROBLEM_CALLS and len(node.args) > PROBLEM_CALLS[name]:
            self._add(node.args[PROBLEM_CALLS[name]], "inventory problem")
        elif name == "update" and any(kw.arg == "message" for kw in node.keywords):
            # a report row's message set with the result (r.update(result=..., message=...))
            for kw in node.keywords:
                if kw.arg == "message":
                    self._add(kw.value, "report row")
        elif any(kw.arg == "failed" and isinstance(kw.value, ast.Constant) and kw.value.value is True for kw in node.keywords):
            # a module result built as dict(..., failed=True, msg=...) that a module exits with (ByokModule.exit)
            for kw in node.keywords:
                if kw.arg == "msg":
                    self._add(kw.value, "failed result")
        self.generic_visit(node)

    def visit_Return(self, node):
        # the message templates of the explain() helpers (PKCS#11 errors)
        if self.scope and self.scope[-1] == "explain" and node.value is not None:
            self._add(node.value, "explain")
        self.generic_visit(node)

    def visit_Assign(self, node):
        # a report row's message (row['message'] = ...): what the table and the manifest say for a key that did not move
        if any(isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) and t.slice.value == "message"
               for t in node.targets):
            self._add(node.value, "report row")
        # a key's or a check's message set before it is returned (out['msg'] = ..., message = ...): the bundle's checks
        if any(isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant) and t.slice.value == "msg"
               for t in node.targets):
            self._add(node.value, "key result")
        if any(isinstance(t, ast.Name) and t.id in ("message", "refusal") for t in node.targets):
            self._add(node.value, "check result")
        # what a flow cannot honour, by field (NOT_STAGED = {field: why}): a line of the inventory check
        if any(isinstance(t, ast.Name) and t.id == "NOT_STAGED" for t in node.targets) and isinstance(node.value, ast.Dict):
            for value in node.value.values:
                self._add(value, "inventory problem")
        if self.scope and self.scope[-1] == "explain" and any(isinstance(t, ast.Name) and t.id == "detail"
                                                              for t in node.targets):
            self._add(node.value, "explain")
        self.generic_visit(node)


def dict_table(tree, name):
    """{key: rendered value} of a module-level dict literal assigned to `name`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Dict):
                return {render(k): " ".join(render(v).split()) for k, v in zip(node.value.keys, node.value.values)}
    return {}


# ------------------------------------------------------------------------------------------------------------------
# Roles (YAML)
# ------------------------------------------------------------------------------------------------------------------

def role_messages():
    import yaml
    out = []
    for path in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        tasks = yaml.safe_load(path.read_text()) or []

        def walk(items):
            for task in items or []:
                if not isinstance(task, dict):
                    continue
                for key in ("block", "rescue", "always"):
                    walk(task.get(key))
                for mod, field in (("ansible.builtin.fail", "msg"), ("fail", "msg"), ("ansible.builtin.assert", "fail_msg"),
                                   ("assert", "fail_msg")):
                    args = task.get(mod)
                    if isinstance(args, dict) and isinstance(args.get(field), str):
                        text = re.sub(r"\{\{.*?\}\}", PLACEHOLDER, args[field], flags=re.S)
                        text = re.sub(r"\{%.*?%\}", "", text, flags=re.S)
                        out.append((str(path.relative_to(ROOT)), task.get("name", ""), " ".join(text.split())))

        walk(tasks)
    return out


# ------------------------------------------------------------------------------------------------------------------
# The document
# ------------------------------------------------------------------------------------------------------------------

def cause_fix(message):
    best = None
    for prefix in NOTES:
        if message.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is not None:
        return NOTES[best]
    if "; " in message:
        cause, fix = message.split("; ", 1)
        return cause.rstrip(".") + ".", fix.rstrip(".") + "."
    return None


def _md(text):
    return text.replace("|", "\\|")


def _entry(lines, message, kinds, wheres):
    lines.append("#### `%s`" % message.replace("`", "'"))
    lines.append("")
    lines.append("- raised as: %s in %s" % (", ".join("`%s`" % k for k in kinds), ", ".join("`%s`" % w for w in wheres)))
    cf = cause_fix(message)
    if cf:
        lines.append("- cause: %s" % cf[0])
        lines.append("- fix: %s" % cf[1])
    else:
        lines.append("- cause and fix: the message says it all.")
    lines.append("")


# The steps of a transfer, in the order a run goes through them, with the symptom a user sees and the files whose
# messages belong to the step (the first step whose pattern matches a file wins).
STEPS = [
    ("1. The inventory is checked", "the run stops at the first task, before anything is touched, with one line per "
     "problem (host: variable path: what is wrong; how to fix it)",
     ("action/byok_plan.py", "module_utils/inventory.py", "module_utils/fleet_plan.py", "module_utils/attributes.py",
      "module_utils/vault_target.py")),
    ("2. Signing in to Azure and reaching the vault", "the first vault task fails (the vault read or the KEK), for the "
     "hosts with keys for that vault", ("module_utils/keyvault.py", "module_utils/azure_auth.py", "module_utils/azure_errors.py",
                                        "module_utils/azure_pacing.py", "module_utils/vault_client.py",
                                        "modules/keyvault_key_info.py", "module_utils/module_base.py",
                                        "module_utils/vault_backend.py:key_info_request,read_vault,look_up,vault_kcv,read_records")),
    ("3. The KEK", "the KEK task fails: the key exchange key cannot be found, created or used",
     ("modules/byok_kek_fetch.py",
      "module_utils/vault_backend.py:ensure_kek,_ensure_kek,kek_problems,kek_request,check_dest,delete_kek,write_pem,"
      "fetch_kek,kek_records,delete_keks")),
    ("4. The HSM: login and key generation", "the key generation task fails on a host; that host's keys are reported "
     "failed", ("module_utils/pkcs11_token.py", "module_utils/pkcs11_session.py", "module_utils/pkcs11_keys.py",
                "module_utils/pkcs11_wrap.py", "module_utils/vendors.py", "module_utils/host_lock.py",
                "modules/hsm_keygen.py", "module_utils/key_identity.py",
                "module_utils/hsm_backend.py:key_id_of,key_spec,ensure_key,byok_is_current,load_kek,wrap_key,keygen_request,flatten,"
                "hsm_step_request,_ensure_keys,seal_records,seal_one", "modules/byok_hsm_step.py")),
    ("5. Wrapping and the .byok file", "the wrap task fails on a host, or a .byok file is refused",
     ("modules/byok_wrap.py", "module_utils/hsm_backend.py:wrap_item,item_keks,wrap_request", "module_utils/byok_file.py")),
    ("6. Importing into the vault", "a key's row says failed (or unknown) after the import task",
     ("modules/keyvault_import.py", "module_utils/vault_backend.py", "modules/byok_vault_step.py")),
    ("7. The report and the manifest", "the run fails at the end, after the table, naming the keys that did not move",
     ("action/byok_manifest.py", "module_utils/report.py", "module_utils/record.py", "filter/transfer.py")),
]


def step_of(rel, wheres=()):
    """The step of a message: the first file pattern that matches its file (and, with ':names', one of its functions)."""
    text = str(rel)
    for title, _symptom, files in STEPS:
        for pattern in files:
            path, _sep, names = pattern.partition(":")
            if path and text.endswith(path) and (not names or any(w.split(".")[-1] in names.split(",") for w in wheres)):
                return title
    return STEPS[-1][0]


def _anchor(title):
    return re.sub(r"[^a-z0-9 -]", "", title.lower()).strip().replace(" ", "-")


def generate():
    files = sorted((ROOT / "plugins").rglob("*.py"))
    lines = [
        "# Troubleshooting: every error message of byok.keyvault",
        "",
        "<!-- GENERATED by scripts/gen-troubleshooting.py from plugins/ and roles/: do not edit by hand.",
        "     Regenerate with: python scripts/gen-troubleshooting.py ; tests/e2e/faults/test_troubleshooting_doc.py",
        "     fails when this file and the code disagree. -->",
        "",
        "Each message below is what a task's `msg` says, with the variable parts shown as `%s`. Messages are grouped by"
        % PLACEHOLDER,
        "the step of the transfer where they appear, then by the file that produces them; search this page for a fixed",
        "part of your message. A message written as",
        "\"what went wrong; what to do\" is split into cause and fix; others have a hand-written explanation.",
        "",
    ]
    tables = {}
    groups = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        collector = Collector()
        collector.visit(tree)
        merged = {}
        for message, kind, where in collector.found:
            entry = merged.setdefault(message, ([], []))
            if kind not in entry[0]:
                entry[0].append(kind)
            if where not in entry[1]:
                entry[1].append(where)
        if merged:
            groups.append((path.relative_to(ROOT), merged))
        if path.name == "pkcs11_session.py":
            tables["fix"] = dict_table(tree, "_FIX")
        if path.name == "azure_errors.py":
            tables["perm"] = dict_table(tree, "PERMISSION_HINT")

    by_step = dict((title, []) for title, _symptom, _files in STEPS)
    for rel, merged in groups:
        split = {}
        for message, (kinds, wheres) in merged.items():
            split.setdefault(step_of(rel, wheres), {})[message] = (kinds, wheres)
        for title, part in split.items():
            by_step[title].append((rel, part))
    lines.append("## Contents")
    lines.append("")
    for title, symptom, _files in STEPS:
        if by_step[title]:
            count = sum(len(merged) for _rel, merged in by_step[title])
            lines.append("- [%s](#%s) (%d): %s" % (title, _anchor(title), count, symptom))
    lines.append("- [PKCS#11 return codes](#pkcs11-return-codes)")
    lines.append("- [Permissions for a 403](#permissions-for-a-403)")
    lines.append("- [Roles](#roles)")
    lines.append("")
    for title, symptom, _files in STEPS:
        if not by_step[title]:
            continue
        lines.append("## %s" % title)
        lines.append("")
        lines.append("Symptom: %s." % symptom)
        lines.append("")
        for rel, merged in by_step[title]:
            lines.append("### From `%s`" % rel)
            lines.append("")
            for message, (kinds, wheres) in merged.items():
                _entry(lines, message, kinds, wheres)

    for title, intro, header, key, cell in (
            ("PKCS#11 return codes",
             ["The text after \"PKCS#11 %s failed:\" for the return codes the collection knows (`_FIX` in" % PLACEHOLDER,
              "`plugins/module_utils/pkcs11_session.py`); python-pkcs11 names the exception after the CKR_ code."],
             "| python-pkcs11 exception | message (cause, then fix) |", "fix", "| `%s` | %s |"),
            ("Permissions for a 403",
             ["What \"the identity ... may not ...; grant it ...\" asks for, by operation (`PERMISSION_HINT` in",
              "`plugins/module_utils/azure_errors.py`)."],
             "| operation | grant |", "perm", "| %s | %s |")):
        lines.extend(["## %s" % title, ""] + intro + ["", header, "|---|---|"])
        lines.extend(cell % (name, _md(text)) for name, text in tables.get(key, {}).items())
        lines.append("")
    lines.append("## Roles")
    lines.append("")
    lines.append("Messages of the roles' own checks (`ansible.builtin.fail` / `ansible.builtin.assert`).")
    lines.append("")
    for rel, task, message in role_messages():
        if message == PLACEHOLDER:
            lines.append("#### `<...>` (the messages of the keys that did not move, joined by ' | ')")
            lines.append("")
            lines.append("- task: %s (`%s`)" % (task, rel))
            lines.append("- cause and fix: see each joined message in the sections above.")
            lines.append("")
            continue
        lines.append("#### `%s`" % message.replace("`", "'"))
        lines.append("")
        lines.append("- task: %s (`%s`)" % (task, rel))
        cf = cause_fix(message)
        if cf:
            lines.append("- cause: %s" % cf[0])
            lines.append("- fix: %s" % cf[1])
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when docs/troubleshooting.md is out of date")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    text = generate()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(OUT), "generated"))
            print("\n%s is out of date: run scripts/gen-troubleshooting.py" % OUT.relative_to(ROOT), file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print("wrote %s" % OUT.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
