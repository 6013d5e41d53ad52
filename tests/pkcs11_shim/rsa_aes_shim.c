/*
 * rsa_aes_shim.c - TEST-ONLY PKCS#11 proxy that adds CKM_RSA_AES_KEY_WRAP to another PKCS#11 library.
 *
 * Why it exists: byok.keyvault wraps keys for Azure Key Vault BYOK either in one step with
 * CKM_RSA_AES_KEY_WRAP (0x1054, what Thales Luna and nShield offer) or in two steps
 * (CKM_AES_KEY_WRAP_PAD, then CKM_RSA_PKCS_OAEP).  The lab HSM, SoftHSM 2.6.1, lacks 0x1054
 * (added in 2.7.0) and no installable PKCS#11 provider has it, so the one-shot code path and the
 * "auto picks combined" decision could not be tested.  This proxy loads the real library named by
 * the environment variable BYOK_SHIM_TARGET (default /usr/lib/softhsm/libsofthsm2.so) and hands out
 * its function list unchanged except for:
 *
 *   C_GetMechanismList  adds CKM_RSA_AES_KEY_WRAP when the token has CKM_AES_KEY_WRAP_PAD and
 *                       CKM_RSA_PKCS_OAEP (and lacks 0x1054 itself);
 *   C_GetMechanismInfo  answers for CKM_RSA_AES_KEY_WRAP (key sizes of CKM_RSA_PKCS_OAEP, CKF_WRAP);
 *   C_WrapKey           implements CKM_RSA_AES_KEY_WRAP the way an HSM does, inside the underlying
 *                       token: it checks CK_RSA_AES_KEY_WRAP_PARAMS (ulAESKeyBits 128/192/256, OAEP
 *                       SHA-1 with MGF1-SHA-1), generates a session AES key (sensitive, extractable,
 *                       wrap), wraps the target with CKM_AES_KEY_WRAP_PAD, wraps the AES key with the
 *                       RSA public key under CKM_RSA_PKCS_OAEP, returns OAEP part || KWP part and
 *                       destroys the AES key.  The size query (NULL output buffer) and
 *                       CKR_BUFFER_TOO_SMALL follow PKCS#11 section 5.2.
 *   C_GetTokenInfo      unchanged (manufacturer, model, ... pass through) unless BYOK_SHIM_FIRMWARE is
 *                       set to "MAJOR.MINOR", which replaces firmwareVersion so tests can exercise the
 *                       vendor firmware gates (e.g. Luna 7.3 / 7.4) against SoftHSM.
 *
 * Emulating an older HSM (off unless set):
 *
 *   BYOK_SHIM_MANUFACTURER / BYOK_SHIM_MODEL  replace manufacturerID / model of C_GetTokenInfo (e.g. "Safenet, Inc." and
 *                       "LunaSA" for a Luna 6).
 *   BYOK_SHIM_COMBINED=0  leaves CKM_RSA_AES_KEY_WRAP out (firmware that lacks it, such as Luna 5/6).
 *   BYOK_SHIM_LUNA_KWP=1  offers Luna's vendor-defined CKM_AES_KWP (0x80000171, RFC 5649) instead of
 *                       CKM_AES_KEY_WRAP_PAD: the list shows 0x80000171 and not 0x210A, C_WrapKey maps 0x80000171 to the
 *                       token's 0x210A and refuses 0x210A itself with CKR_MECHANISM_INVALID.
 *   BYOK_SHIM_PRIVATE_WRAP_RV=0xNN  makes every C_WrapKey whose key to wrap is a private key (CKO_PRIVATE_KEY) fail with
 *                       that return value, as a partition that may not wrap private keys does (a Luna cloning model,
 *                       or a Key Export partition with partition policy 1 "Allow private key wrapping" off:
 *                       CKR_KEY_NOT_WRAPPABLE, 0x69).  Secret keys are still wrapped.
 *
 * Test hooks, off unless their environment variable is set (the calls pass through unchanged):
 *
 *   BYOK_SHIM_CALL_LOG=FILE  appends one line per C_Login ("pid C_Login user_type=U rv=0x..."; the PIN is
 *                       never written) and a "begin" and an "end rv=0x..." line around each C_GenerateKeyPair,
 *                       C_GenerateKey and C_WrapKey (one write(2) per line, O_APPEND: safe across processes).
 *                       Tests count logins and see where a killed process was.
 *   BYOK_SHIM_WRAP_DELAY_MS=N  sleeps N ms inside each C_WrapKey (after its "begin" line), so a test can
 *                       kill a process while a wrap is in progress.
 *
 * The clear AES key never leaves the underlying token: the proxy only handles object handles, so
 * the result is exactly what the token's own two-step wrap produces.  0x1054 is always emulated,
 * even if the target library offers it natively.  Not for production: it exists only so the test
 * suite can drive the combined path.  Build with tests/pkcs11_shim/build.sh.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"

#ifndef CKM_RSA_AES_KEY_WRAP
#define CKM_RSA_AES_KEY_WRAP 0x1054UL
#endif
#define SHIM_CKM_LUNA_AES_KWP 0x80000171UL

static int env_flag(const char *name, int dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    return strcmp(v, "0") != 0;
}

static int luna_kwp(void)
{
    return env_flag("BYOK_SHIM_LUNA_KWP", 0);
}

/* what C_WrapKey/C_UnwrapKey hand to the real library for a mechanism the caller asked for */
static CK_RV map_mechanism(CK_MECHANISM_PTR in, CK_MECHANISM *out)
{
    *out = *in;
    if (!luna_kwp())
        return CKR_OK;
    if (in->mechanism == CKM_AES_KEY_WRAP_PAD)
        return CKR_MECHANISM_INVALID;
    if (in->mechanism == SHIM_CKM_LUNA_AES_KWP)
        out->mechanism = CKM_AES_KEY_WRAP_PAD;
    return CKR_OK;
}

static void pad_copy(CK_UTF8CHAR *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    memset(dst, ' ', size);
    memcpy(dst, src, n < size ? n : size);
}

/* PKCS#11 v2.40 CK_RSA_AES_KEY_WRAP_PARAMS (not in every pkcs11.h, e.g. p11-kit 0.24's) */
typedef struct {
    CK_ULONG ulAESKeyBits;
    CK_RSA_PKCS_OAEP_PARAMS *pOAEPParams;
} SHIM_RSA_AES_KEY_WRAP_PARAMS;

static void *target_handle;           /* dlopen handle of the real library */
static CK_FUNCTION_LIST *target;      /* its function list */
static CK_FUNCTION_LIST shim_list;    /* copy of it with our overrides */

/* One line to BYOK_SHIM_CALL_LOG (if set): "<pid> <text>\n", appended with a single write(2). */
static void call_log(const char *fmt, ...)
{
    const char *path = getenv("BYOK_SHIM_CALL_LOG");
    char line[256];
    va_list ap;
    int n, m, fd;

    if (path == NULL || *path == '\0')
        return;
    n = snprintf(line, sizeof(line), "%ld ", (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) < 0) {
        /* a test hook: nothing to do about a failed log write */
    }
    close(fd);
}

static void wrap_delay(void)
{
    const char *ms = getenv("BYOK_SHIM_WRAP_DELAY_MS");
    long n = ms != NULL ? strtol(ms, NULL, 10) : 0;
    struct timespec ts;

    if (n <= 0)
        return;
    ts.tv_sec = n / 1000;
    ts.tv_nsec = (n % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static CK_RV shim_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user_type, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
    CK_RV rv = target->C_Login(session, user_type, pin, pin_len);
    call_log("C_Login user_type=%lu rv=0x%08lx", (unsigned long)user_type, (unsigned long)rv);
    return rv;
}

static CK_RV shim_GenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR pub_tmpl,
                                  CK_ULONG pub_count, CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_count,
                                  CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
    CK_RV rv;
    call_log("C_GenerateKeyPair begin mechanism=0x%lx", mech != NULL ? (unsigned long)mech->mechanism : 0UL);
    rv = target->C_GenerateKeyPair(session, mech, pub_tmpl, pub_count, priv_tmpl, priv_count, pub, priv);
    call_log("C_GenerateKeyPair end rv=0x%08lx", (unsigned long)rv);
    return rv;
}

static CK_RV shim_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
                              CK_OBJECT_HANDLE_PTR key)
{
    CK_RV rv;
    call_log("C_GenerateKey begin mechanism=0x%lx", mech != NULL ? (unsigned long)mech->mechanism : 0UL);
    rv = target->C_GenerateKey(session, mech, tmpl, count, key);
    call_log("C_GenerateKey end rv=0x%08lx", (unsigned long)rv);
    return rv;
}

/* The real library offers what the two-step emulation needs (and not 0x1054 itself). */
static int can_emulate(const CK_MECHANISM_TYPE *list, CK_ULONG n)
{
    int kwp = 0, oaep = 0;
    CK_ULONG i;
    for (i = 0; i < n; i++) {
        if (list[i] == CKM_RSA_AES_KEY_WRAP)
            return 0;
        kwp |= list[i] == CKM_AES_KEY_WRAP_PAD;
        oaep |= list[i] == CKM_RSA_PKCS_OAEP;
    }
    return kwp && oaep;
}

static CK_RV shim_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    CK_MECHANISM_TYPE *tmp;
    CK_ULONG n = 0;
    CK_RV rv;
    int add;

    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = target->C_GetMechanismList(slot, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    tmp = calloc(n + 1, sizeof(*tmp));
    if (tmp == NULL)
        return CKR_HOST_MEMORY;
    rv = target->C_GetMechanismList(slot, tmp, &n);
    if (rv == CKR_OK) {
        add = can_emulate(tmp, n) && env_flag("BYOK_SHIM_COMBINED", 1);
        if (add)
            tmp[n] = CKM_RSA_AES_KEY_WRAP;
        if (luna_kwp()) {
            CK_ULONG i;
            for (i = 0; i < n; i++)
                if (tmp[i] == CKM_AES_KEY_WRAP_PAD)
                    tmp[i] = SHIM_CKM_LUNA_AES_KWP;
        }
        if (list == NULL) {
            *count = n + add;
        } else if (*count < n + add) {
            *count = n + add;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(list, tmp, (n + add) * sizeof(*tmp));
            *count = n + add;
        }
    }
    free(tmp);
    return rv;
}

static CK_RV shim_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
    CK_RV rv;

    if (luna_kwp() && type == CKM_AES_KEY_WRAP_PAD)
        return CKR_MECHANISM_INVALID;
    if (luna_kwp() && type == SHIM_CKM_LUNA_AES_KWP)
        type = CKM_AES_KEY_WRAP_PAD;
    if (type == CKM_RSA_AES_KEY_WRAP && !env_flag("BYOK_SHIM_COMBINED", 1))
        return CKR_MECHANISM_INVALID;
    rv = target->C_GetMechanismInfo(slot, type, info);
    if (type != CKM_RSA_AES_KEY_WRAP || rv != CKR_MECHANISM_INVALID)
        return rv;
    rv = target->C_GetMechanismInfo(slot, CKM_AES_KEY_WRAP_PAD, info);
    if (rv != CKR_OK)
        return rv;
    /* key sizes are those of the RSA wrapping key */
    rv = target->C_GetMechanismInfo(slot, CKM_RSA_PKCS_OAEP, info);
    if (rv != CKR_OK)
        return rv;
    info->flags = CKF_WRAP;
    return CKR_OK;
}

static CK_RV shim_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    const char *fw = getenv("BYOK_SHIM_FIRMWARE");
    unsigned int major, minor;
    CK_RV rv = target->C_GetTokenInfo(slot, info);

    const char *manufacturer = getenv("BYOK_SHIM_MANUFACTURER");
    const char *model = getenv("BYOK_SHIM_MODEL");

    if (rv == CKR_OK && fw != NULL && sscanf(fw, "%u.%u", &major, &minor) == 2) {
        info->firmwareVersion.major = (CK_BYTE)major;
        info->firmwareVersion.minor = (CK_BYTE)minor;
    }
    if (rv == CKR_OK && manufacturer != NULL && *manufacturer != '\0')
        pad_copy(info->manufacturerID, sizeof(info->manufacturerID), manufacturer);
    if (rv == CKR_OK && model != NULL && *model != '\0')
        pad_copy(info->model, sizeof(info->model), model);
    return rv;
}

/* CK_RSA_AES_KEY_WRAP_PARAMS as Azure BYOK needs them; CKR_OK or CKR_MECHANISM_PARAM_INVALID */
static CK_RV check_params(CK_MECHANISM_PTR mech, SHIM_RSA_AES_KEY_WRAP_PARAMS **out)
{
    SHIM_RSA_AES_KEY_WRAP_PARAMS *p = mech->pParameter;
    CK_RSA_PKCS_OAEP_PARAMS *oaep;

    if (p == NULL || mech->ulParameterLen != sizeof(*p))
        return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulAESKeyBits != 128 && p->ulAESKeyBits != 192 && p->ulAESKeyBits != 256)
        return CKR_MECHANISM_PARAM_INVALID;
    oaep = p->pOAEPParams;
    if (oaep == NULL || oaep->hashAlg != CKM_SHA_1 || oaep->mgf != CKG_MGF1_SHA1 ||
        oaep->source != CKZ_DATA_SPECIFIED)
        return CKR_MECHANISM_PARAM_INVALID;
    *out = p;
    return CKR_OK;
}

static CK_RV wrap_key_impl(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE rsa_pub,
                           CK_OBJECT_HANDLE target_key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    SHIM_RSA_AES_KEY_WRAP_PARAMS *params;
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
    CK_MECHANISM keygen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM kwp = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG value_len, oaep_len = 0, kwp_len = 0;
    CK_RV rv;

    if (mech == NULL)
        return target->C_WrapKey(session, mech, rsa_pub, target_key, out, out_len);
    {
        const char *refuse = getenv("BYOK_SHIM_PRIVATE_WRAP_RV");
        if (refuse != NULL && *refuse != '\0') {
            CK_OBJECT_CLASS key_class = 0;
            CK_ATTRIBUTE attr = {CKA_CLASS, &key_class, sizeof(key_class)};
            if (target->C_GetAttributeValue(session, target_key, &attr, 1) == CKR_OK && key_class == CKO_PRIVATE_KEY)
                return (CK_RV)strtoul(refuse, NULL, 0);
        }
    }
    if (mech->mechanism != CKM_RSA_AES_KEY_WRAP) {
        CK_MECHANISM mapped;
        rv = map_mechanism(mech, &mapped);
        if (rv != CKR_OK)
            return rv;
        return target->C_WrapKey(session, &mapped, rsa_pub, target_key, out, out_len);
    }
    if (!env_flag("BYOK_SHIM_COMBINED", 1))
        return CKR_MECHANISM_INVALID;
    if (out_len == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = check_params(mech, &params);
    if (rv != CKR_OK)
        return rv;
    oaep.pParameter = params->pOAEPParams;
    oaep.ulParameterLen = sizeof(CK_RSA_PKCS_OAEP_PARAMS);
    value_len = params->ulAESKeyBits / 8;

    {
        CK_ATTRIBUTE tmpl[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
            {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
            {CKA_TOKEN, &no, sizeof(no)},
            {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &yes, sizeof(yes)},
            {CKA_WRAP, &yes, sizeof(yes)},
            {CKA_ENCRYPT, &no, sizeof(no)},
            {CKA_DECRYPT, &no, sizeof(no)},
            {CKA_UNWRAP, &no, sizeof(no)},
        };
        rv = target->C_GenerateKey(session, &keygen, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &aes);
        if (rv != CKR_OK)
            return rv;
    }

    /* Lengths of both parts (the token computes them; nothing is returned yet) */
    rv = target->C_WrapKey(session, &kwp, aes, target_key, NULL, &kwp_len);
    if (rv == CKR_OK)
        rv = target->C_WrapKey(session, &oaep, rsa_pub, aes, NULL, &oaep_len);
    if (rv != CKR_OK)
        goto done;
    if (out == NULL) {
        *out_len = oaep_len + kwp_len;
        goto done;
    }
    if (*out_len < oaep_len + kwp_len) {
        *out_len = oaep_len + kwp_len;
        rv = CKR_BUFFER_TOO_SMALL;
        goto done;
    }
    /* RSA-OAEP(AES key) || AES-KWP(target), written straight into the caller's buffer */
    rv = target->C_WrapKey(session, &oaep, rsa_pub, aes, out, &oaep_len);
    if (rv == CKR_OK)
        rv = target->C_WrapKey(session, &kwp, aes, target_key, out + oaep_len, &kwp_len);
    if (rv == CKR_OK)
        *out_len = oaep_len + kwp_len;

done:
    {
        CK_RV drv = target->C_DestroyObject(session, aes);
        if (rv == CKR_OK && drv != CKR_OK)
            rv = drv;
    }
    return rv;
}

/* C_WrapKey: the call log and the delay around the real work (size queries are neither logged nor delayed) */
static CK_RV shim_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE rsa_pub,
                          CK_OBJECT_HANDLE target_key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    unsigned long mechanism = mech != NULL ? (unsigned long)mech->mechanism : 0UL;
    CK_RV rv;

    if (out == NULL)
        return wrap_key_impl(session, mech, rsa_pub, target_key, out, out_len);
    call_log("C_WrapKey begin mechanism=0x%lx", mechanism);
    wrap_delay();
    rv = wrap_key_impl(session, mech, rsa_pub, target_key, out, out_len);
    call_log("C_WrapKey end rv=0x%08lx", (unsigned long)rv);
    return rv;
}

static CK_RV shim_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

static CK_RV load_target(void)
{
    const char *path = getenv("BYOK_SHIM_TARGET");
    CK_C_GetFunctionList get_list;
    CK_RV rv;

    if (target != NULL)
        return CKR_OK;
    if (path == NULL || *path == '\0')
        path = DEFAULT_TARGET;
    target_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (target_handle == NULL) {
        fprintf(stderr, "rsa_aes_shim: cannot load %s: %s\n", path, dlerror());
        return CKR_GENERAL_ERROR;
    }
    get_list = (CK_C_GetFunctionList)dlsym(target_handle, "C_GetFunctionList");
    if (get_list == NULL || (rv = get_list(&target)) != CKR_OK || target == NULL) {
        fprintf(stderr, "rsa_aes_shim: %s has no usable C_GetFunctionList\n", path);
        dlclose(target_handle);
        target_handle = NULL;
        target = NULL;
        return CKR_GENERAL_ERROR;
    }
    shim_list = *target;
    shim_list.C_GetFunctionList = shim_GetFunctionList;
    shim_list.C_GetMechanismList = shim_GetMechanismList;
    shim_list.C_GetMechanismInfo = shim_GetMechanismInfo;
    shim_list.C_GetTokenInfo = shim_GetTokenInfo;
    shim_list.C_WrapKey = shim_WrapKey;
    shim_list.C_Login = shim_Login;
    shim_list.C_GenerateKeyPair = shim_GenerateKeyPair;
    shim_list.C_GenerateKey = shim_GenerateKey;
    return CKR_OK;
}

static CK_RV shim_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    CK_RV rv;

    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = load_target();
    if (rv == CKR_OK)
        *list = &shim_list;
    return rv;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    return shim_GetFunctionList(list);
}

__attribute__((destructor)) static void unload_target(void)
{
    if (target_handle != NULL)
        dlclose(target_handle);
    target_handle = NULL;
    target = NULL;
}
