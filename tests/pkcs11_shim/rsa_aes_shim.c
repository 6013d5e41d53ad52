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
 *   BYOK_SHIM_KWP_STANDARD=1  behaves as the PKCS#11 standard and conforming tokens (opencryptoki, NSS softokn) do,
 *                       not as SoftHSM: CKM_AES_KEY_WRAP_PAD (0x210A) is RFC 3394 over PKCS#7-padded input (block of
 *                       BYOK_SHIM_PKCS7_BLOCK bytes, default 16), and CKM_AES_KEY_WRAP_KWP (0x210B, added to the list)
 *                       is RFC 5649 over the exact encoding.  Done inside the token: the key's encoding is wrapped and
 *                       unwrapped under a session key into a session secret (SoftHSM's zero padding cut by the DER
 *                       length), re-encoded, and wrapped with SoftHSM's own RFC 3394 or RFC 5649 of a secret value.
 *   BYOK_SHIM_KWP_RV=0xNN  makes every AES wrap with padding (0x210A, 0x210B, Luna's 0x80000171) fail with that
 *                       return value (a token whose padded wraps are broken or refused).
 *   BYOK_SHIM_NO_EC=1   a token without EC key generation: CKM_EC_KEY_PAIR_GEN is not listed and is refused.
 *   BYOK_SHIM_TOKENINFO_RV=0xNN  C_GetTokenInfo fails with that return value (e.g. 0x5, CKR_GENERAL_ERROR).
 *   BYOK_SHIM_HIDE_PRIVATE_FINDS=N  the first N object searches of a process that name a CKA_LABEL do not list
 *                       private keys (a token that briefly does not show a private key it holds).
 *
 * Test hooks, off unless their environment variable is set (the calls pass through unchanged):
 *
 *   BYOK_SHIM_CALL_LOG=FILE  appends one line per C_Login ("pid C_Login user_type=U rv=0x..."; the PIN is
 *                       never written) and a "begin" and an "end rv=0x..." line around each C_GenerateKeyPair,
 *                       C_GenerateKey and C_WrapKey (one write(2) per line, O_APPEND: safe across processes); each
 *                       ends in token=1 for a token object (a target key) and token=0 for a session object.
 *                       Tests count logins and see where a killed process was.
 *   BYOK_SHIM_WRAP_DELAY_MS=N  sleeps N ms inside each C_WrapKey of a token object (after its "begin" line), so a
 *                       test can kill a process while a target key's wrap is in progress.
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

#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"

#ifndef CKM_RSA_AES_KEY_WRAP
#define CKM_RSA_AES_KEY_WRAP 0x1054UL
#endif
#define SHIM_CKM_LUNA_AES_KWP 0x80000171UL
#define SHIM_CKM_AES_KEY_WRAP 0x2109UL
#define SHIM_CKM_AES_KEY_WRAP_KWP 0x210BUL
#define SHIM_CKM_EC_KEY_PAIR_GEN 0x1040UL

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

static int kwp_standard(void)
{
    return env_flag("BYOK_SHIM_KWP_STANDARD", 0);
}

static int no_ec(void)
{
    return env_flag("BYOK_SHIM_NO_EC", 0);
}

/* a return value from the environment, or CKR_OK when unset */
static CK_RV env_rv(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return CKR_OK;
    return (CK_RV)strtoul(v, NULL, 0);
}

static int is_padded_wrap(CK_MECHANISM_TYPE m)
{
    return m == CKM_AES_KEY_WRAP_PAD || m == SHIM_CKM_AES_KEY_WRAP_KWP || m == SHIM_CKM_LUNA_AES_KWP;
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

/* CKA_TOKEN of a template (0 when absent: PKCS#11's default is a session object) */
static int template_token(CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    CK_ULONG i;
    for (i = 0; tmpl != NULL && i < count; i++)
        if (tmpl[i].type == CKA_TOKEN && tmpl[i].pValue != NULL && tmpl[i].ulValueLen == sizeof(CK_BBOOL))
            return *(CK_BBOOL *)tmpl[i].pValue == CK_TRUE;
    return 0;
}

/* CKA_TOKEN of an object (0 when it cannot be read) */
static int object_token(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE obj)
{
    CK_BBOOL on_token = CK_FALSE;
    CK_ATTRIBUTE attr = {CKA_TOKEN, &on_token, sizeof(on_token)};
    return target->C_GetAttributeValue(session, obj, &attr, 1) == CKR_OK && on_token == CK_TRUE;
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
    if (no_ec() && mech != NULL && mech->mechanism == SHIM_CKM_EC_KEY_PAIR_GEN)
        return CKR_MECHANISM_INVALID;
    int on_token = template_token(priv_tmpl, priv_count);
    call_log("C_GenerateKeyPair begin mechanism=0x%lx token=%d", mech != NULL ? (unsigned long)mech->mechanism : 0UL,
             on_token);
    rv = target->C_GenerateKeyPair(session, mech, pub_tmpl, pub_count, priv_tmpl, priv_count, pub, priv);
    call_log("C_GenerateKeyPair end rv=0x%08lx token=%d", (unsigned long)rv, on_token);
    return rv;
}

static CK_RV shim_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
                              CK_OBJECT_HANDLE_PTR key)
{
    CK_RV rv;
    int on_token = template_token(tmpl, count);
    call_log("C_GenerateKey begin mechanism=0x%lx token=%d", mech != NULL ? (unsigned long)mech->mechanism : 0UL,
             on_token);
    rv = target->C_GenerateKey(session, mech, tmpl, count, key);
    call_log("C_GenerateKey end rv=0x%08lx token=%d", (unsigned long)rv, on_token);
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
    CK_ULONG n = 0, i, kept = 0;
    CK_RV rv;
    int has_kwp = 0;

    if (count == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = target->C_GetMechanismList(slot, NULL, &n);
    if (rv != CKR_OK)
        return rv;
    tmp = calloc(n + 2, sizeof(*tmp));
    if (tmp == NULL)
        return CKR_HOST_MEMORY;
    rv = target->C_GetMechanismList(slot, tmp, &n);
    if (rv == CKR_OK) {
        int add = can_emulate(tmp, n) && env_flag("BYOK_SHIM_COMBINED", 1);
        /* what the emulated token lists: the real list less what it hides, then what it adds */
        for (i = 0; i < n; i++) {
            CK_MECHANISM_TYPE m = tmp[i];
            if (no_ec() && m == SHIM_CKM_EC_KEY_PAIR_GEN)
                continue;
            if (luna_kwp() && m == CKM_AES_KEY_WRAP_PAD)
                m = SHIM_CKM_LUNA_AES_KWP;
            has_kwp |= m == SHIM_CKM_AES_KEY_WRAP_KWP;
            tmp[kept++] = m;
        }
        if (add)
            tmp[kept++] = CKM_RSA_AES_KEY_WRAP;
        if (kwp_standard() && !has_kwp)
            tmp[kept++] = SHIM_CKM_AES_KEY_WRAP_KWP;
        if (list == NULL) {
            *count = kept;
        } else if (*count < kept) {
            *count = kept;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(list, tmp, kept * sizeof(*tmp));
            *count = kept;
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
    if (no_ec() && type == SHIM_CKM_EC_KEY_PAIR_GEN)
        return CKR_MECHANISM_INVALID;
    if (kwp_standard() && type == SHIM_CKM_AES_KEY_WRAP_KWP)
        type = CKM_AES_KEY_WRAP_PAD;
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

    if (rv == CKR_OK && env_rv("BYOK_SHIM_TOKENINFO_RV") != CKR_OK)
        return env_rv("BYOK_SHIM_TOKENINFO_RV");
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

/* The length of a DER SEQUENCE at the start of buf (header included), or 0 when it is not one that fits */
static CK_ULONG der_length(const CK_BYTE *buf, CK_ULONG len)
{
    CK_ULONG body = 0, head, i, n;

    if (len < 2 || buf[0] != 0x30)
        return 0;
    if (buf[1] < 0x80) {
        head = 2;
        body = buf[1];
    } else {
        n = buf[1] & 0x7f;
        if (n == 0 || n > 3 || len < 2 + n)
            return 0;
        for (i = 0; i < n; i++)
            body = (body << 8) | buf[2 + i];
        head = 2 + n;
    }
    return head + body <= len ? head + body : 0;
}

static void destroy_quietly(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE *obj)
{
    if (*obj != CK_INVALID_HANDLE)
        target->C_DestroyObject(session, *obj);
    *obj = CK_INVALID_HANDLE;
}

static void free_clear(CK_BYTE *buf, CK_ULONG len)
{
    if (buf != NULL) {
        memset(buf, 0, len);
        free(buf);
    }
}

/*
 * The encoding of key_handle as a symmetric wrap sees it (PKCS#8 for a private key, the value for a secret key), read
 * inside the token: wrapped with SoftHSM's RFC 5649 under a session key, unwrapped into a readable session secret.
 * SoftHSM's zero padding of private keys is cut at the DER length.  *out is malloc'd; the caller clears and frees it.
 */
static CK_RV key_encoding(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key_handle, CK_BYTE **out, CK_ULONG *out_len)
{
    CK_MECHANISM keygen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM rfc5649 = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_OBJECT_CLASS secret = CKO_SECRET_KEY, key_class = 0;
    CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG value_len = 32, wrapped_len = 0;
    CK_OBJECT_HANDLE tmp = CK_INVALID_HANDLE, clear = CK_INVALID_HANDLE;
    CK_BYTE *wrapped = NULL, *value = NULL;
    CK_ATTRIBUTE class_attr = {CKA_CLASS, &key_class, sizeof(key_class)};
    CK_ATTRIBUTE value_attr = {CKA_VALUE, NULL, 0};
    CK_RV rv;
    CK_ATTRIBUTE tmp_tmpl[] = {
        {CKA_CLASS, &secret, sizeof(secret)}, {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &value_len, sizeof(value_len)}, {CKA_TOKEN, &no, sizeof(no)},
        {CKA_WRAP, &yes, sizeof(yes)}, {CKA_UNWRAP, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE clear_tmpl[] = {
        {CKA_CLASS, &secret, sizeof(secret)}, {CKA_KEY_TYPE, &generic, sizeof(generic)},
        {CKA_TOKEN, &no, sizeof(no)}, {CKA_SENSITIVE, &no, sizeof(no)}, {CKA_EXTRACTABLE, &yes, sizeof(yes)},
    };

    *out = NULL;
    /* a secret key that is not sensitive: its value as it is */
    if (target->C_GetAttributeValue(session, key_handle, &value_attr, 1) == CKR_OK && value_attr.ulValueLen > 0 &&
        value_attr.ulValueLen != CK_UNAVAILABLE_INFORMATION && (value = malloc(value_attr.ulValueLen)) != NULL) {
        value_attr.pValue = value;
        if (target->C_GetAttributeValue(session, key_handle, &value_attr, 1) == CKR_OK) {
            *out = value;
            *out_len = value_attr.ulValueLen;
            return CKR_OK;
        }
        free(value);
        value = NULL;
        value_attr.pValue = NULL;
    }
    value_attr.ulValueLen = 0;
    rv = target->C_GetAttributeValue(session, key_handle, &class_attr, 1);
    if (rv == CKR_OK)
        rv = target->C_GenerateKey(session, &keygen, tmp_tmpl, sizeof(tmp_tmpl) / sizeof(tmp_tmpl[0]), &tmp);
    if (rv == CKR_OK)
        rv = target->C_WrapKey(session, &rfc5649, tmp, key_handle, NULL, &wrapped_len);
    if (rv == CKR_OK && (wrapped = malloc(wrapped_len)) == NULL)
        rv = CKR_HOST_MEMORY;
    if (rv == CKR_OK)
        rv = target->C_WrapKey(session, &rfc5649, tmp, key_handle, wrapped, &wrapped_len);
    if (rv == CKR_OK)
        rv = target->C_UnwrapKey(session, &rfc5649, tmp, wrapped, wrapped_len, clear_tmpl,
                                 sizeof(clear_tmpl) / sizeof(clear_tmpl[0]), &clear);
    if (rv == CKR_OK)
        rv = target->C_GetAttributeValue(session, clear, &value_attr, 1);
    if (rv == CKR_OK && (value = malloc(value_attr.ulValueLen + 1)) == NULL)
        rv = CKR_HOST_MEMORY;
    if (rv == CKR_OK) {
        value_attr.pValue = value;
        rv = target->C_GetAttributeValue(session, clear, &value_attr, 1);
    }
    if (rv == CKR_OK) {
        *out_len = value_attr.ulValueLen;
        if (key_class == CKO_PRIVATE_KEY && der_length(value, *out_len) != 0)
            *out_len = der_length(value, *out_len);
        *out = value;
        value = NULL;
    }
    free(wrapped);
    free_clear(value, value_attr.ulValueLen);
    destroy_quietly(session, &clear);
    destroy_quietly(session, &tmp);
    return rv;
}

/* RFC 5649 (padded) or RFC 3394 of in under an AES key, with OpenSSL; CKR_OK or CKR_FUNCTION_FAILED */
static CK_RV aes_wrap(int padded, const CK_BYTE *key, CK_ULONG key_len, const CK_BYTE *in, CK_ULONG in_len,
                      CK_BYTE *out, CK_ULONG *out_len)
{
    const EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *ctx;
    int n = 0, m = 0, ok;

    if (key_len == 16)
        cipher = padded ? EVP_aes_128_wrap_pad() : EVP_aes_128_wrap();
    else if (key_len == 24)
        cipher = padded ? EVP_aes_192_wrap_pad() : EVP_aes_192_wrap();
    else if (key_len == 32)
        cipher = padded ? EVP_aes_256_wrap_pad() : EVP_aes_256_wrap();
    else
        return CKR_WRAPPING_KEY_SIZE_RANGE;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return CKR_HOST_MEMORY;
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = EVP_EncryptInit_ex(ctx, cipher, NULL, key, NULL) == 1 &&
         EVP_EncryptUpdate(ctx, out, &n, in, (int)in_len) == 1 && EVP_EncryptFinal_ex(ctx, out + n, &m) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return CKR_FUNCTION_FAILED;
    *out_len = (CK_ULONG)(n + m);
    return CKR_OK;
}

/*
 * 0x210A and 0x210B as the standard defines them (BYOK_SHIM_KWP_STANDARD): the encodings of the wrapping key and of the
 * key to wrap are read inside the token (key_encoding: both must be extractable, as the collection's are), then wrapped
 * in software - RFC 5649 for 0x210B, RFC 3394 over PKCS#7 padding for 0x210A - since SoftHSM 2.6.1 zero-pads every
 * input of its own padded wrap to a multiple of 8 bytes, secret values included.
 */
static CK_RV standard_padded_wrap(CK_SESSION_HANDLE session, CK_MECHANISM_TYPE mechanism, CK_OBJECT_HANDLE wrapping,
                                  CK_OBJECT_HANDLE key_handle, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    const char *block_env = getenv("BYOK_SHIM_PKCS7_BLOCK");
    CK_ULONG block = block_env != NULL && *block_env != '\0' ? strtoul(block_env, NULL, 10) : 16;
    CK_BYTE *kek = NULL, *plain = NULL, *input = NULL, *result = NULL;
    CK_ULONG kek_len = 0, plain_len = 0, input_len = 0, result_len = 0, pad, i;
    int padded = mechanism == SHIM_CKM_AES_KEY_WRAP_KWP;
    CK_RV rv;

    if (block != 8 && block != 16)
        block = 16;
    if (out_len == NULL)
        return CKR_ARGUMENTS_BAD;
    rv = key_encoding(session, wrapping, &kek, &kek_len);
    if (rv == CKR_OK)
        rv = key_encoding(session, key_handle, &plain, &plain_len);
    if (rv == CKR_OK) {
        pad = padded ? 0 : block - plain_len % block;  /* PKCS#7: 1 to block bytes, each the padding's length */
        input_len = plain_len + pad;
        input = malloc(input_len);
        result = malloc(input_len + 16);
        if (input == NULL || result == NULL)
            rv = CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK) {
        memcpy(input, plain, plain_len);
        for (i = plain_len; i < input_len; i++)
            input[i] = (CK_BYTE)pad;
        rv = aes_wrap(padded, kek, kek_len, input, input_len, result, &result_len);
    }
    if (rv == CKR_OK) {
        if (out == NULL) {
            *out_len = result_len;
        } else if (*out_len < result_len) {
            *out_len = result_len;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, result, result_len);
            *out_len = result_len;
        }
    }
    free_clear(kek, kek_len);
    free_clear(plain, plain_len);
    free_clear(input, input_len);
    free_clear(result, input_len + 16);
    return rv;
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
    if (is_padded_wrap(mech->mechanism) && env_rv("BYOK_SHIM_KWP_RV") != CKR_OK)
        return env_rv("BYOK_SHIM_KWP_RV");
    if (kwp_standard() && (mech->mechanism == CKM_AES_KEY_WRAP_PAD || mech->mechanism == SHIM_CKM_AES_KEY_WRAP_KWP))
        return standard_padded_wrap(session, mech->mechanism, rsa_pub, target_key, out, out_len);
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
    int on_token;
    CK_RV rv;

    if (out == NULL)
        return wrap_key_impl(session, mech, rsa_pub, target_key, out, out_len);
    /* token=1: a wrap of a token object (a target key); the test wraps that prove a mechanism use session objects */
    on_token = object_token(session, target_key);
    call_log("C_WrapKey begin mechanism=0x%lx token=%d", mechanism, on_token);
    if (on_token)
        wrap_delay();
    rv = wrap_key_impl(session, mech, rsa_pub, target_key, out, out_len);
    call_log("C_WrapKey end rv=0x%08lx token=%d", (unsigned long)rv, on_token);
    return rv;
}

/* BYOK_SHIM_HIDE_PRIVATE_FINDS: the session whose current search hides private keys, and how many searches did */
static CK_SESSION_HANDLE hiding_session = CK_INVALID_HANDLE;
static unsigned long hidden_searches;

static CK_RV shim_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    const char *limit = getenv("BYOK_SHIM_HIDE_PRIVATE_FINDS");
    CK_RV rv = target->C_FindObjectsInit(session, tmpl, count);
    CK_ULONG i;
    int labelled = 0;

    for (i = 0; tmpl != NULL && i < count; i++)
        labelled |= tmpl[i].type == CKA_LABEL;
    if (rv == CKR_OK && labelled && limit != NULL && hidden_searches < strtoul(limit, NULL, 10)) {
        hidden_searches++;
        hiding_session = session;
    }
    return rv;
}

static CK_RV shim_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR found, CK_ULONG max, CK_ULONG_PTR count)
{
    CK_RV rv;
    CK_ULONG i, kept;

    for (;;) {
        rv = target->C_FindObjects(session, found, max, count);
        if (rv != CKR_OK || session != hiding_session || count == NULL || *count == 0)
            return rv;
        for (i = 0, kept = 0; i < *count; i++) {
            CK_OBJECT_CLASS cls = 0;
            CK_ATTRIBUTE attr = {CKA_CLASS, &cls, sizeof(cls)};
            if (target->C_GetAttributeValue(session, found[i], &attr, 1) == CKR_OK && cls == CKO_PRIVATE_KEY)
                continue;
            found[kept++] = found[i];
        }
        *count = kept;
        if (kept > 0)
            return rv;
    }
}

static CK_RV shim_FindObjectsFinal(CK_SESSION_HANDLE session)
{
    if (session == hiding_session)
        hiding_session = CK_INVALID_HANDLE;
    return target->C_FindObjectsFinal(session);
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
    shim_list.C_FindObjectsInit = shim_FindObjectsInit;
    shim_list.C_FindObjects = shim_FindObjects;
    shim_list.C_FindObjectsFinal = shim_FindObjectsFinal;
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
