/* store secrets: the key that encrypts asr_configs.api_key, and AES-256-GCM around it.
 *
 * Key source, first found wins: ASRD_SECRET_KEY (64 hex digits = the key; any other string of at
 * least 16 characters is a passphrase), then <data_dir>/secret.key (64 hex digits; created 0600
 * from the system RNG when missing, atomically via link() so that two processes starting together
 * agree on one key).
 *
 * Stored forms (the tag makes a wrong key or a tampered value fail loudly, never garbage):
 * - "v1:" + base64(12-byte nonce | ciphertext | 16-byte tag) under a raw 32-byte key;
 * - "v2:" + base64(16-byte salt | nonce | ciphertext | tag) under a passphrase: the key is
 *   PBKDF2-HMAC-SHA256(passphrase, salt, ASR__STORE_KDF_ITER). The salt travels with the value so
 *   that nodes sharing one database (each with its own data directory) derive the same key.
 * A passphrase used to be hashed once with SHA-256 and its values written as "v1:"; those still
 * decrypt under a passphrase (logged once), and opening the store re-encrypts them as "v2:".
 *
 * A derivation costs a fraction of a second by design, so derived keys are cached per salt (each
 * process writes with one salt; reading another node's values costs one derivation per salt). */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "store/store_int.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define SALT_LEN ASR__STORE_SALT_LEN
static const unsigned char k_aad[] = "asrd asr_configs.api_key v1";

atomic_bool asr__store_legacy_logged;

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses exactly 64 hex digits, optionally followed by whitespace. */
static bool parse_hex_key(const char *t, unsigned char key[32]) {
    for (int i = 0; i < 32; i++) {
        int hi = hexval((unsigned char)t[2 * i]),
            lo = hi < 0 ? -1 : hexval((unsigned char)t[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    for (const char *p = t + 64; *p; p++)
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            return false;
    return true;
}

static asr_err_t read_key_file(asr_store_t *s, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        asr_errf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        ASR_LOG(ASR_LOG_WARN,
                "msg=secret_key_file_open path=%s mode=%o hint=\"readable by group or others; "
                "chmod 600 it\"",
                path, (unsigned)(st.st_mode & 0777));
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if (n < 64 || !parse_hex_key(buf, s->key)) {
        asr_errf(err, errlen, "%s: expected 64 hex digits (a 32-byte key)", path);
        return ASR_ERR_INVALID;
    }
    s->have_key = true;
    return ASR_OK;
}

static asr_err_t create_key_file(const char *path, char *err, size_t errlen) {
    unsigned char key[32];
    char hex[66], tmp[4200];
    if (RAND_bytes(key, sizeof key) != 1) {
        asr_errf(err, errlen, "cannot generate a secret key: RNG failure");
        return ASR_ERR_IO;
    }
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[64] = '\n';
    hex[65] = '\0';
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        asr_errf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return ASR_ERR_IO;
    }
    bool ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
    close(fd);
    memset(key, 0, sizeof key);
    memset(hex, 0, sizeof hex);
    /* link() fails with EEXIST when another process won the race: then its key is the key */
    if (!ok || (link(tmp, path) != 0 && errno != EEXIST)) {
        asr_errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        unlink(tmp);
        return ASR_ERR_IO;
    }
    unlink(tmp);
    return ASR_OK;
}

/* Keeps the passphrase (to derive keys for salts met later) and its old single-SHA-256 key. */
static void set_passphrase(asr_store_t *s, const char *pass) {
    s->passphrase = asr_xstrdup(pass);
    SHA256((const unsigned char *)pass, strlen(pass), s->legacy_key);
    s->have_key = true;
}

asr_err_t asr__store_key_load(asr_store_t *s, const char *data_dir, char *err, size_t errlen) {
    const char *env = getenv("ASRD_SECRET_KEY");
    if (env && *env) {
        if (strlen(env) >= 64 && parse_hex_key(env, s->key)) {
            s->have_key = true;
            return ASR_OK;
        }
        if (strlen(env) < 16) {
            asr_errf(err, errlen,
                     "ASRD_SECRET_KEY: 64 hex digits or a passphrase of at least 16 characters");
            return ASR_ERR_INVALID;
        }
        set_passphrase(s, env);
        return ASR_OK;
    }
    if (!data_dir || !*data_dir)
        return ASR_OK; /* no key: api keys cannot be stored or read */
    char path[4096];
    snprintf(path, sizeof path, "%s/secret.key", data_dir);
    if (access(path, F_OK) != 0) {
        asr_err_t e = create_key_file(path, err, errlen);
        if (e != ASR_OK)
            return e;
        ASR_LOG(ASR_LOG_INFO, "msg=secret_key_file_created path=%s", path);
    }
    return read_key_file(s, path, err, errlen);
}

void asr__store_key_clear(asr_store_t *s) {
    if (s->passphrase) {
        memset(s->passphrase, 0, strlen(s->passphrase));
        free(s->passphrase);
        s->passphrase = NULL;
    }
    memset(s->key, 0, sizeof s->key);
    memset(s->legacy_key, 0, sizeof s->legacy_key);
    memset(s->kdf, 0, sizeof s->kdf);
    s->n_kdf = 0;
}

/* The PBKDF2 key for `salt`, from the cache or derived now (then cached, the oldest entry making
 * room). Thread-safe: concurrent callers wait for one derivation. */
static bool passphrase_key(asr_store_t *s, const unsigned char salt[SALT_LEN],
                           unsigned char key[32]) {
    pthread_mutex_lock(&s->key_mu);
    for (int i = 0; i < s->n_kdf; i++)
        if (!memcmp(s->kdf[i].salt, salt, SALT_LEN)) {
            memcpy(key, s->kdf[i].key, 32);
            pthread_mutex_unlock(&s->key_mu);
            return true;
        }
    bool ok = PKCS5_PBKDF2_HMAC(s->passphrase, (int)strlen(s->passphrase), salt, SALT_LEN,
                                ASR__STORE_KDF_ITER, EVP_sha256(), 32, key) == 1;
    if (ok) {
        int n = ASR__STORE_KDF_CACHE;
        if (s->n_kdf < n)
            s->n_kdf++;
        memmove(&s->kdf[1], &s->kdf[0], (size_t)(s->n_kdf - 1) * sizeof s->kdf[0]);
        memcpy(s->kdf[0].salt, salt, SALT_LEN);
        memcpy(s->kdf[0].key, key, 32);
    }
    pthread_mutex_unlock(&s->key_mu);
    return ok;
}

/* This process's write salt: random, chosen at the first write. */
static bool write_salt(asr_store_t *s, unsigned char salt[SALT_LEN]) {
    pthread_mutex_lock(&s->key_mu);
    bool ok = s->have_write_salt || RAND_bytes(s->write_salt, SALT_LEN) == 1;
    s->have_write_salt = ok;
    memcpy(salt, s->write_salt, SALT_LEN);
    pthread_mutex_unlock(&s->key_mu);
    return ok;
}

/* AES-256-GCM with a fresh random nonce: writes raw = nonce | ciphertext | tag. */
static bool gcm_seal(const unsigned char key[32], const char *plain, size_t n, unsigned char *raw) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    bool ok =
        ctx && RAND_bytes(raw, NONCE_LEN) == 1 &&
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &len, k_aad, (int)sizeof k_aad - 1) == 1 &&
        EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &len, (const unsigned char *)plain, (int)n) == 1 &&
        EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + len, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* Opens raw = nonce | ciphertext | tag (rl bytes) into a malloc'd string; NULL on a wrong key. */
static char *gcm_open(const unsigned char key[32], const unsigned char *raw, int rl) {
    int n = rl - NONCE_LEN - TAG_LEN, len = 0, fin = 0;
    char *plain = asr_xmalloc((size_t)n + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &len, k_aad, (int)sizeof k_aad - 1) == 1 &&
              EVP_DecryptUpdate(ctx, (unsigned char *)plain, &len, raw + NONCE_LEN, n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                  (void *)(raw + NONCE_LEN + n)) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(plain);
        return NULL;
    }
    plain[n] = '\0';
    return plain;
}

asr_err_t asr__store_encrypt(asr_store_t *s, const char *plain, char **out) {
    *out = NULL;
    if (!s->have_key)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be stored: no secret key (set "
                                                "ASRD_SECRET_KEY or use a data directory)");
    size_t n = strlen(plain), pre = s->passphrase ? SALT_LEN : 0;
    size_t raw_len = pre + NONCE_LEN + n + TAG_LEN;
    unsigned char *raw = asr_xmalloc(raw_len), key[32];
    bool ok = true;
    if (s->passphrase)
        ok = write_salt(s, raw) && passphrase_key(s, raw, key);
    else
        memcpy(key, s->key, sizeof key);
    ok = ok && gcm_seal(key, plain, n, raw + pre);
    memset(key, 0, sizeof key);
    if (!ok) {
        free(raw);
        return asr__store_fail(ASR_ERR_INVALID, "api_key: encryption failed");
    }
    char *b64 = asr_xmalloc(3 + 4 * ((raw_len + 2) / 3) + 1);
    memcpy(b64, s->passphrase ? "v2:" : "v1:", 3);
    EVP_EncodeBlock((unsigned char *)b64 + 3, raw, (int)raw_len);
    free(raw);
    *out = b64;
    return ASR_OK;
}

/* Decodes "vN:" + base64 into *raw (malloc'd); returns its length, or -1. */
static int decode_stored(const char *enc, int *version, unsigned char **raw) {
    *raw = NULL;
    size_t el = strlen(enc);
    if (el < 3 || enc[0] != 'v' || (enc[1] != '1' && enc[1] != '2') || enc[2] != ':' ||
        (el - 3) % 4 != 0)
        return -1;
    *version = enc[1] - '0';
    const char *b = enc + 3;
    size_t bl = el - 3;
    *raw = asr_xmalloc(bl / 4 * 3 + 1);
    int rl = EVP_DecodeBlock(*raw, (const unsigned char *)b, (int)bl);
    if (rl >= 0)
        rl -= (bl > 0 && b[bl - 1] == '=') + (bl > 1 && b[bl - 2] == '=');
    return rl;
}

asr_err_t asr__store_decrypt(asr_store_t *s, const char *enc, char **out) {
    *out = NULL;
    if (!s->have_key)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be decrypted: no secret key (set "
                                                "ASRD_SECRET_KEY or use the data directory)");
    int version = 0;
    unsigned char *raw = NULL, key[32];
    int rl = decode_stored(enc, &version, &raw);
    if (rl < 0 && !raw)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: stored value has an unknown format");
    int pre = version == 2 ? SALT_LEN : 0;
    if (rl < pre + NONCE_LEN + TAG_LEN) {
        free(raw);
        return asr__store_fail(ASR_ERR_INVALID, "api_key: stored value is corrupt");
    }
    bool have = true, legacy = version == 1 && s->passphrase;
    if (version == 2 && !s->passphrase)
        have = false; /* written under a passphrase; this node has a raw key */
    else if (version == 2)
        have = passphrase_key(s, raw, key);
    else
        memcpy(key, legacy ? s->legacy_key : s->key, sizeof key);
    char *plain = have ? gcm_open(key, raw + pre, rl - pre) : NULL;
    memset(key, 0, sizeof key);
    free(raw);
    if (plain && legacy && !atomic_exchange(&asr__store_legacy_logged, true))
        ASR_LOG(ASR_LOG_WARN, "msg=api_key_legacy_encryption reason=\"an api key is encrypted with "
                              "the old passphrase key (one "
                              "SHA-256 of ASRD_SECRET_KEY); it still reads, and opening the store "
                              "re-encrypts it with PBKDF2-HMAC-SHA256\"");
    if (!plain)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be decrypted: the secret key "
                                                "differs from the one that encrypted it");
    *out = plain;
    return ASR_OK;
}

asr_err_t asr__store_secret_upgrade(asr_store_t *s) {
    if (!s->passphrase)
        return ASR_OK;
    asr__rows_t r;
    LOCK(s);
    asr_err_t e = asr__store_exec(
        s, "SELECT id, api_key FROM asr_configs WHERE api_key LIKE 'v1:%'", NULL, 0, &r);
    UNLOCK(s);
    if (e != ASR_OK)
        return e;
    int n_done = 0;
    for (size_t i = 0; i < r.n_rows; i++) {
        const char *old = asr__store_cell(&r, i, 1);
        char *plain = NULL, *enc = NULL;
        if (asr__store_decrypt(s, old, &plain) != ASR_OK)
            continue; /* not the old form of this passphrase: leave it, reads will say why */
        e = asr__store_encrypt(s, plain, &enc);
        memset(plain, 0, strlen(plain));
        free(plain);
        if (e != ASR_OK)
            break;
        /* only if nobody changed it meanwhile (another node upgrading, or an edit) */
        asr__param_t p[3] = {PTEXT(enc), PI64(asr__store_cell_i64(&r, i, 0)), PTEXT(old)};
        asr__rows_t u;
        LOCK(s);
        e = asr__store_exec(s, "UPDATE asr_configs SET api_key = ? WHERE id = ? AND api_key = ?", p,
                            3, &u);
        UNLOCK(s);
        free(enc);
        if (e != ASR_OK)
            break;
        n_done += u.changes > 0;
        asr__store_rows_free(&u);
    }
    asr__store_rows_free(&r);
    if (n_done)
        ASR_LOG(
            ASR_LOG_WARN,
            "msg=api_keys_reencrypted n=%d reason=\"from the old passphrase key (one SHA-256) to "
            "PBKDF2-HMAC-SHA256 (%d iterations)\"",
            n_done, ASR__STORE_KDF_ITER);
    return e;
}
