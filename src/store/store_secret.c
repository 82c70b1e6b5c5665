/* store secrets: the 32-byte key that encrypts asr_configs.api_key, and AES-256-GCM around it.
 *
 * Key source, first found wins: ASRD_SECRET_KEY (64 hex digits = the key; any other string of at
 * least 16 characters is a passphrase hashed with SHA-256), then <data_dir>/secret.key (64 hex
 * digits; created 0600 from the system RNG when missing, atomically via link() so that two
 * processes starting together agree on one key). A stored value is "v1:" + base64(12-byte random
 * nonce | ciphertext | 16-byte tag); the tag makes a wrong key or a tampered value fail loudly
 * instead of returning garbage. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "store/store_int.h"

#define NONCE_LEN 12
#define TAG_LEN 16
static const unsigned char k_aad[] = "asrd asr_configs.api_key v1";

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
        ASR_LOG(ASR_LOG_WARN, "store: %s is readable by group or others (mode %o); chmod 600 it",
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
        SHA256((const unsigned char *)env, strlen(env), s->key);
        s->have_key = true;
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
        ASR_LOG(ASR_LOG_INFO, "store: created secret key file %s", path);
    }
    return read_key_file(s, path, err, errlen);
}

asr_err_t asr__store_encrypt(const asr_store_t *s, const char *plain, char **out) {
    *out = NULL;
    if (!s->have_key)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be stored: no secret key (set "
                                                "ASRD_SECRET_KEY or use a data directory)");
    size_t n = strlen(plain);
    unsigned char *raw = asr_xmalloc(NONCE_LEN + n + TAG_LEN);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    bool ok =
        ctx && RAND_bytes(raw, NONCE_LEN) == 1 &&
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, s->key, raw) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &len, k_aad, (int)sizeof k_aad - 1) == 1 &&
        EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &len, (const unsigned char *)plain, (int)n) == 1 &&
        EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + len, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(raw);
        return asr__store_fail(ASR_ERR_INVALID, "api_key: encryption failed");
    }
    size_t raw_len = NONCE_LEN + n + TAG_LEN;
    char *b64 = asr_xmalloc(3 + 4 * ((raw_len + 2) / 3) + 1);
    memcpy(b64, "v1:", 3);
    EVP_EncodeBlock((unsigned char *)b64 + 3, raw, (int)raw_len);
    free(raw);
    *out = b64;
    return ASR_OK;
}

asr_err_t asr__store_decrypt(const asr_store_t *s, const char *enc, char **out) {
    *out = NULL;
    if (!s->have_key)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be decrypted: no secret key (set "
                                                "ASRD_SECRET_KEY or use the data directory)");
    size_t el = strlen(enc);
    if (el < 3 || memcmp(enc, "v1:", 3) != 0 || (el - 3) % 4 != 0)
        return asr__store_fail(ASR_ERR_INVALID, "api_key: stored value has an unknown format");
    const char *b = enc + 3;
    size_t bl = el - 3;
    unsigned char *raw = asr_xmalloc(bl / 4 * 3 + 1);
    int rl = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)bl);
    if (rl >= 0)
        rl -= (bl > 0 && b[bl - 1] == '=') + (bl > 1 && b[bl - 2] == '=');
    if (rl < NONCE_LEN + TAG_LEN) {
        free(raw);
        return asr__store_fail(ASR_ERR_INVALID, "api_key: stored value is corrupt");
    }
    int n = rl - NONCE_LEN - TAG_LEN, len = 0, fin = 0;
    char *plain = asr_xmalloc((size_t)n + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    bool ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, s->key, raw) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &len, k_aad, (int)sizeof k_aad - 1) == 1 &&
              EVP_DecryptUpdate(ctx, (unsigned char *)plain, &len, raw + NONCE_LEN, n) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + n) == 1 &&
              EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok) {
        free(plain);
        return asr__store_fail(ASR_ERR_INVALID, "api_key: cannot be decrypted: the secret key "
                                                "differs from the one that encrypted it");
    }
    plain[n] = '\0';
    *out = plain;
    return ASR_OK;
}
