# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real Azure SDK on a lab server (:class:`lab.server.LabServer`): credentials of its identities and key clients
on its vaults, trusting the lab CA.  A test that uses them is skipped when the SDK is not installed."""

from __future__ import annotations

import pytest

OPERATOR = "lab-operator"


def _authority(lab) -> dict:
    """Where azure-identity finds the lab's token endpoint, and the CA it trusts."""
    return {"authority": lab.authority, "disable_instance_discovery": True, "connection_verify": lab.ca_path}


def credential(lab, identity=OPERATOR, secret=None, client_id=None):
    """The client-secret credential of a lab identity (``secret``, ``client_id``: present other ones)."""
    azure_identity = pytest.importorskip("azure.identity")
    ident = lab.identity(identity)
    return azure_identity.ClientSecretCredential(lab.tenant_id, client_id or ident.client_id, secret if secret is not None else ident.secret,
                                                 **_authority(lab))


def certificate_credential(lab, certificate_path, identity=OPERATOR):
    """A certificate credential of a lab identity: key and certificate in one PEM, as azure-identity reads it."""
    azure_identity = pytest.importorskip("azure.identity")
    return azure_identity.CertificateCredential(lab.tenant_id, lab.identity(identity).client_id, certificate_path=certificate_path,
                                                **_authority(lab))


def key_client(lab, vault="premium", identity=OPERATOR, **kwargs):
    """An azure-keyvault-keys client on a lab vault with ``identity``'s credential (or ``credential=``); other keywords
    go to the client (``retry_total=0``)."""
    keys = pytest.importorskip("azure.keyvault.keys")
    cred = kwargs.pop("credential", None) or credential(lab, identity)
    return keys.KeyClient(lab.urls[vault], cred, connection_verify=lab.ca_path, **kwargs)
