# -*- coding: utf-8 -*-
# Copyright (c) byok.keyvault contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Initialise a free SoftHSM2 slot as a token over PKCS#11 (C_InitToken, then C_InitPIN as the SO).

Run as: python -c "$(cat this file)" LIBRARY LABEL, with the two PINs as a JSON object {"so_pin": ..., "user_pin": ...} on stdin,
so that no PIN is on a command line (every local user can read those; stdin is this process's own).
Only the Python standard library is needed on the host.
"""

from __future__ import absolute_import, division, print_function

import ctypes
import json
import sys

CKF_TOKEN_INITIALIZED = 0x400
CKF_RW_SESSION = 0x2
CKF_SERIAL_SESSION = 0x4
CKU_SO = 0
CK_ULONG = ctypes.c_ulong


class CK_VERSION(ctypes.Structure):
    _fields_ = [('major', ctypes.c_ubyte), ('minor', ctypes.c_ubyte)]


class CK_TOKEN_INFO(ctypes.Structure):
    _fields_ = [('label', ctypes.c_char * 32), ('manufacturerID', ctypes.c_char * 32), ('model', ctypes.c_char * 16),
                ('serialNumber', ctypes.c_char * 16), ('flags', CK_ULONG), ('ulMaxSessionCount', CK_ULONG),
                ('ulSessionCount', CK_ULONG), ('ulMaxRwSessionCount', CK_ULONG), ('ulRwSessionCount', CK_ULONG),
                ('ulMaxPinLen', CK_ULONG), ('ulMinPinLen', CK_ULONG), ('ulTotalPublicMemory', CK_ULONG),
                ('ulFreePublicMemory', CK_ULONG), ('ulTotalPrivateMemory', CK_ULONG), ('ulFreePrivateMemory', CK_ULONG),
                ('hardwareVersion', CK_VERSION), ('firmwareVersion', CK_VERSION), ('utcTime', ctypes.c_char * 16)]


def fail(what, rv):
    sys.stderr.write('%s failed with CKR 0x%08x\n' % (what, rv))
    sys.exit(1)


def main():
    library, label = sys.argv[1], sys.argv[2]
    pins = json.loads(sys.stdin.read())
    so_pin, user_pin = pins['so_pin'].encode('utf-8'), pins['user_pin'].encode('utf-8')
    lib = ctypes.CDLL(library)
    rv = lib.C_Initialize(None)
    if rv:
        fail('C_Initialize', rv)
    try:
        count = CK_ULONG(0)
        rv = lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count))
        if rv:
            fail('C_GetSlotList', rv)
        slots = (CK_ULONG * count.value)()
        rv = lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count))
        if rv:
            fail('C_GetSlotList', rv)
        free = None
        for slot in slots[:count.value]:
            info = CK_TOKEN_INFO()
            if lib.C_GetTokenInfo(CK_ULONG(slot), ctypes.byref(info)) == 0 and not info.flags & CKF_TOKEN_INITIALIZED:
                free = slot
                break
        if free is None:
            sys.stderr.write('no free slot in %s to initialise a token in\n' % library)
            sys.exit(1)
        padded = label.encode('utf-8')[:32].ljust(32, b' ')
        rv = lib.C_InitToken(CK_ULONG(free), ctypes.c_char_p(so_pin), CK_ULONG(len(so_pin)), ctypes.c_char_p(padded))
        if rv:
            fail('C_InitToken', rv)
        # SoftHSM moves the new token to another slot id: find it by its label
        rv = lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(count))
        slots = (CK_ULONG * count.value)()
        lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(count))
        target = None
        for slot in slots[:count.value]:
            info = CK_TOKEN_INFO()
            if lib.C_GetTokenInfo(CK_ULONG(slot), ctypes.byref(info)) == 0 and info.flags & CKF_TOKEN_INITIALIZED \
                    and bytes(info.label) == padded:
                target = slot
        if target is None:
            sys.stderr.write('the token %s is not found after C_InitToken\n' % label)
            sys.exit(1)
        session = CK_ULONG(0)
        rv = lib.C_OpenSession(CK_ULONG(target), CK_ULONG(CKF_RW_SESSION | CKF_SERIAL_SESSION), None, None,
                               ctypes.byref(session))
        if rv:
            fail('C_OpenSession', rv)
        rv = lib.C_Login(session, CK_ULONG(CKU_SO), ctypes.c_char_p(so_pin), CK_ULONG(len(so_pin)))
        if rv:
            fail('C_Login (SO)', rv)
        rv = lib.C_InitPIN(session, ctypes.c_char_p(user_pin), CK_ULONG(len(user_pin)))
        if rv:
            fail('C_InitPIN', rv)
        lib.C_Logout(session)
        lib.C_CloseSession(session)
    finally:
        lib.C_Finalize(None)
    print('token %s initialised' % label)


main()
