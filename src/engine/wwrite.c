/* engine: what the writers (wwrite.h) share: side files written whole and fsynced, JSON side files
 * as Hugging Face indents them, preprocessor_config.json, and the tokenizer files. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "engine/wwrite.h"

asr_err_t asr__wwrite_file(const char *dir, const char *name, const void *data, size_t len,
                           char *errbuf, size_t errbuf_len) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        asr_errf(errbuf, errbuf_len, "cannot create %s: %s", path, strerror(errno));
        return ASR_ERR_IO;
    }
    const char *p = data;
    int bad = 0;
    while (len > 0 && !bad) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            bad = w == 0 ? EIO : errno;
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (!bad && fsync(fd) != 0)
        bad = errno;
    if (close(fd) != 0 && !bad)
        bad = errno;
    if (bad) {
        asr_errf(errbuf, errbuf_len, "cannot write %s: %s", path, strerror(bad));
        return ASR_ERR_IO;
    }
    return ASR_OK;
}

asr_err_t asr__wwrite_json(const char *dir, const char *name, json_t *doc, char *errbuf,
                           size_t errbuf_len) {
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    if (!text) {
        asr_errf(errbuf, errbuf_len, "out of memory writing %s", name);
        return ASR_ERR_NOMEM;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* in place of the NUL: the file ends with a newline */
    asr_err_t rc = asr__wwrite_file(dir, name, text, n + 1, errbuf, errbuf_len);
    free(text);
    return rc;
}

json_t *asr__wwrite_int_array(const int32_t *v, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

asr_err_t asr__wwrite_preprocessor(const asr_wwrite_src_t *s, const char *dir, char *errbuf,
                                   size_t errbuf_len) {
    json_t *doc = json_pack("{s:i, s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:s, s:b, s:i}",
                            "chunk_length", 30, "feature_extractor_type", "WhisperFeatureExtractor",
                            "feature_size", s->info.n_mels, "hop_length", 160, "n_fft", 400,
                            "n_samples", 480000, "nb_max_frames", 3000, "padding_side", "right",
                            "padding_value", 0.0, "processor_class", "WhisperProcessor",
                            "return_attention_mask", 0, "sampling_rate", 16000);
    return asr__wwrite_json(dir, "preprocessor_config.json", doc, errbuf, errbuf_len);
}

asr_err_t asr__wwrite_tokenizer_file(const asr_wwrite_src_t *s, const char *dir, const char *name,
                                     asr_wwrite_tok_fn fn, char *errbuf, size_t errbuf_len) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_err_t rc = fn(s->tok, &b, errbuf, errbuf_len);
    if (rc == ASR_OK)
        rc = asr__wwrite_file(dir, name, b.data, b.len, errbuf, errbuf_len);
    asr_buf_free(&b);
    return rc;
}

void asr__wwrite_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}
