# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base class of every failure this collection raises on purpose.

Each subclass (HsmError, KeyVaultError, KeySpecError, ByokFormatError, VendorError, VaultUrlError)
carries a one-line message that names the input, what is wrong and how to fix it, and never a
secret.  Module bases catch ByokError, so a module's main() has no except clause of its own.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ByokError(Exception):
    """A failure with a one-line message a person can act on; never carries a secret."""
