/* route: one attempt on a remote backend over libcurl: an OpenAI-compatible
 * POST …/v1/audio/transcriptions (or /translations), or whisper.cpp's POST /inference, with the
 * audio file and the form fields as multipart/form-data, the backend's Bearer key, and its
 * timeout_ms as the limit of the whole exchange. Every transport failure is reported as such
 * (the classifier in route_policy.c decides what it means); nothing here retries.
 *
 * whisper.cpp's answers are mapped to the OpenAI form the client asked for (json, text, and
 * verbose_json with its segments); srt and vtt pass as whisper.cpp renders them.
 *
 * A fresh easy handle per attempt: no connection is reused, so a backend that resets or hangs
 * affects only the attempt that met it. */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "route/route_int.h"

void asr__route_reply_free(asr__route_reply_t *r) { asr_buf_free(&r->body); }

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && !strncmp(s + n - k, suffix, k);
}

/* The endpoint of backend `t` for this request. */
static void endpoint(const asr__route_target_t *t, bool translate, asr_buf_t *out) {
    size_t n = strlen(t->api_url);
    while (n && t->api_url[n - 1] == '/')
        n--;
    const char *what = translate ? "translations" : "transcriptions";
    if (!strcmp(t->kind, "whisper.cpp")) {
        asr_buf_append(out, t->api_url, n);
        if (!ends_with(t->api_url, n, "/inference"))
            asr_buf_puts(out, "/inference");
        return;
    }
    if (ends_with(t->api_url, n, "/audio/transcriptions"))
        n -= strlen("/audio/transcriptions");
    else if (ends_with(t->api_url, n, "/audio/translations"))
        n -= strlen("/audio/translations");
    else if (!ends_with(t->api_url, n, "/v1")) {
        asr_buf_append(out, t->api_url, n);
        asr_buf_printf(out, "/v1/audio/%s", what);
        return;
    }
    asr_buf_append(out, t->api_url, n);
    asr_buf_printf(out, "/audio/%s", what);
}

static void add_field(curl_mime *m, const char *name, const char *value) {
    if (!value)
        return;
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, name);
    curl_mime_data(p, value, CURL_ZERO_TERMINATED);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The multipart body: the file, then the fields this kind understands. */
static curl_mime *make_form(CURL *h, const asr__route_target_t *t, const asr_route_opts_t *o) {
    curl_mime *m = curl_mime_init(h);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "file");
    curl_mime_filedata(p, o->path);
    curl_mime_filename(p, o->filename && *o->filename ? o->filename : base_name(o->path));
    const char *fmt = o->response_format ? o->response_format : "json";
    if (!strcmp(t->kind, "whisper.cpp")) {
        /* whisper.cpp renders srt, vtt and verbose_json itself (the last in its own shape, mapped
         * by convert_whisper_cpp); json and text are built from its {"text": …} */
        bool own = !strcmp(fmt, "srt") || !strcmp(fmt, "vtt") || !strcmp(fmt, "verbose_json");
        add_field(m, "response_format", own ? fmt : "json");
        add_field(m, "language", o->translate ? NULL : o->language);
        add_field(m, "temperature", o->temperature);
        add_field(m, "prompt", o->prompt);
        if (o->translate)
            add_field(m, "translate", "true");
        return m;
    }
    add_field(m, "model",
              t->model_name && *t->model_name ? t->model_name
              : o->model && *o->model         ? o->model
                                              : "whisper-1");
    add_field(m, "response_format", o->response_format);
    add_field(m, "language", o->translate ? NULL : o->language);
    add_field(m, "prompt", o->prompt);
    add_field(m, "temperature", o->temperature);
    for (int i = 0; i < o->n_granularities; i++)
        add_field(m, "timestamp_granularities[]", o->granularities[i]);
    return m;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    asr__route_reply_t *r = ud;
    if (r->body.len + size * n > ASR__ROUTE_MAX_BODY)
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    asr_buf_append(&r->body, p, size * n);
    return size * n;
}

/* Copies a header's value (trimmed) into dst. */
static void header_value(const char *v, size_t n, char *dst, size_t cap) {
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    asr__route_reply_t *r = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100 or a redirect) */
        r->ctype[0] = r->model_hdr[0] = 0;
        r->retry_after = 0;
    } else if (len > 13 && !strncasecmp(p, "Content-Type:", 13))
        header_value(p + 13, len - 13, r->ctype, sizeof r->ctype);
    else if (len > 13 && !strncasecmp(p, "X-Asrd-Model:", 13))
        header_value(p + 13, len - 13, r->model_hdr, sizeof r->model_hdr);
    else if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        char v[64];
        header_value(p + 12, len - 12, v, sizeof v);
        char *end;
        long s = strtol(v, &end, 10);
        r->retry_after = (*v && !*end && s >= 0) ? (int)(s > 3600 ? 3600 : s) : 1; /* a date */
    }
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    const asr_route_opts_t *o = ud;
    return o->cancel_cb && o->cancel_cb(o->cancel_user_data) ? 1 : 0;
}

static asr_route_net_t net_of(CURLcode cc) {
    switch (cc) {
    case CURLE_OK:
        return ASR_ROUTE_NET_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ASR_ROUTE_NET_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return ASR_ROUTE_NET_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_USE_SSL_FAILED:
        return ASR_ROUTE_NET_TLS;
    case CURLE_ABORTED_BY_CALLBACK:
        return ASR_ROUTE_NET_CANCELLED;
    default:
        return ASR_ROUTE_NET_BROKEN;
    }
}

static double round2(double x) { return round(x * 100.0) / 100.0; }

static double number_or(const json_t *o, const char *key, double dflt) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* One segment of whisper.cpp's verbose_json ({id, text, start, end, tokens, words, temperature,
 * avg_logprob}, times in seconds) in OpenAI's shape. whisper.cpp computes neither the compression
 * ratio nor the no-speech probability: they read 0, as OpenAI's clients need the fields. */
static json_t *openai_segment(const json_t *in, size_t i) {
    json_t *o = json_object();
    const char *text = json_string_value(json_object_get(in, "text"));
    json_t *toks = json_array();
    size_t k;
    json_t *tok;
    json_array_foreach(json_object_get(in, "tokens"), k, tok) {
        if (json_is_integer(tok))
            json_array_append_new(toks, json_integer(json_integer_value(tok)));
    }
    json_object_set_new(o, "id", json_integer((json_int_t)i));
    json_object_set_new(o, "seek", json_integer(0));
    json_object_set_new(o, "start", json_real(round2(number_or(in, "start", 0))));
    json_object_set_new(o, "end", json_real(round2(number_or(in, "end", 0))));
    json_object_set_new(o, "text", json_string(text ? text : ""));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "temperature", json_real(number_or(in, "temperature", 0)));
    json_object_set_new(o, "avg_logprob", json_real(number_or(in, "avg_logprob", 0)));
    json_object_set_new(o, "compression_ratio", json_real(0));
    json_object_set_new(o, "no_speech_prob", json_real(0));
    return o;
}

/* A word being built from whisper.cpp's tokens. */
typedef struct {
    asr_buf_t text;
    double start, end;
} word_acc_t;

static void word_flush(json_t *words, word_acc_t *w) {
    if (w->text.len) {
        json_t *o = json_object();
        json_object_set_new(o, "word", json_stringn(w->text.data, w->text.len));
        json_object_set_new(o, "start", json_real(round2(w->start)));
        json_object_set_new(o, "end", json_real(round2(w->end)));
        json_array_append_new(words, o);
    }
    w->text.len = 0;
}

/* Appends OpenAI's words ({word, start, end}, no spaces) of a whisper.cpp segment to `words`: its
 * "words" are tokens; one whose text starts with a space begins a word, the others (pieces of a
 * word, punctuation) extend the word before, within the segment. */
static void append_words(json_t *words, const json_t *seg, word_acc_t *w) {
    size_t k;
    json_t *tok;
    word_flush(words, w);
    json_array_foreach(json_object_get(seg, "words"), k, tok) {
        const char *t = json_string_value(json_object_get(tok, "word"));
        if (!t || !*t)
            continue;
        if (*t == ' ' || !w->text.len) {
            word_flush(words, w);
            while (*t == ' ')
                t++;
            w->start = number_or(tok, "start", 0);
        }
        asr_buf_puts(&w->text, t);
        w->end = number_or(tok, "end", w->start);
    }
}

static bool wants(const asr_route_opts_t *o, const char *granularity) {
    for (int i = 0; i < o->n_granularities; i++)
        if (!strcmp(o->granularities[i], granularity))
            return true;
    return false;
}

/* OpenAI's verbose_json from whisper.cpp's answer `in` (its verbose_json; a server too old for
 * that format answers {"text": …} and gets no segments) and the transcript `text`. Segments and
 * words as timestamp_granularities asks (segments when it names none), as for a local run. */
static char *openai_verbose_json(const asr_route_opts_t *o, const json_t *in, const char *text,
                                 size_t n) {
    json_t *out = json_object();
    const char *lang = json_string_value(json_object_get(in, "language"));
    if (!lang)
        lang = o->language ? o->language : "";
    json_object_set_new(out, "task", json_string(o->translate ? "translate" : "transcribe"));
    json_object_set_new(out, "language", json_string(lang));
    json_object_set_new(out, "duration", json_real(round2(number_or(in, "duration", 0))));
    json_object_set_new(out, "text", json_stringn(text, n));
    json_t *segs = json_array(), *words = json_array();
    word_acc_t w = {.start = 0};
    asr_buf_init(&w.text);
    size_t i;
    json_t *seg;
    json_array_foreach(json_object_get(in, "segments"), i, seg) {
        if (!json_is_object(seg))
            continue;
        json_array_append_new(segs, openai_segment(seg, json_array_size(segs)));
        append_words(words, seg, &w);
    }
    word_flush(words, &w);
    asr_buf_free(&w.text);
    if (!o->n_granularities || wants(o, "segment"))
        json_object_set_new(out, "segments", segs);
    else
        json_decref(segs);
    if (wants(o, "word"))
        json_object_set_new(out, "words", words);
    else
        json_decref(words);
    char *js = json_dumps(out, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(out);
    return js;
}

/* whisper.cpp answered {"text": …} (or its verbose_json): writes the requested JSON/text form
 * into r->body. A 2xx without text (e.g. {"error": …}) becomes a 502. */
static void convert_whisper_cpp(const asr_route_opts_t *o, asr__route_reply_t *r) {
    const char *fmt = o->response_format ? o->response_format : "json";
    if (!strcmp(fmt, "srt") || !strcmp(fmt, "vtt") || r->status < 200 || r->status >= 300)
        return;
    json_error_t je;
    json_t *in = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    const char *text = json_string_value(json_object_get(in, "text"));
    if (!text) {
        r->status = 502;
        json_decref(in);
        return;
    }
    size_t n = strlen(text);
    while (n && (*text == ' ' || *text == '\n'))
        text++, n--;
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\n'))
        n--;
    asr_buf_t b;
    asr_buf_init(&b);
    if (!strcmp(fmt, "text")) {
        asr_buf_append(&b, text, n);
        asr_buf_puts(&b, "\n");
        snprintf(r->ctype, sizeof r->ctype, "text/plain; charset=utf-8");
    } else {
        char *js = NULL;
        if (!strcmp(fmt, "verbose_json"))
            js = openai_verbose_json(o, in, text, n);
        else {
            json_t *o2 = json_object();
            json_object_set_new(o2, "text", json_stringn(text, n));
            js = json_dumps(o2, JSON_PRESERVE_ORDER | JSON_COMPACT);
            json_decref(o2);
        }
        asr_buf_puts(&b, js ? js : "{}");
        free(js);
        snprintf(r->ctype, sizeof r->ctype, "application/json");
    }
    json_decref(in);
    asr_buf_free(&r->body);
    r->body = b;
}

void asr__route_remote(const asr__route_target_t *t, const asr_route_opts_t *o,
                       asr__route_reply_t *out) {
    memset(out, 0, sizeof *out);
    asr_buf_init(&out->body);
    asr_buf_t url, auth;
    asr_buf_init(&url);
    asr_buf_init(&auth);
    endpoint(t, o->translate, &url);
    CURL *h = curl_easy_init();
    if (!h) {
        out->net = ASR_ROUTE_NET_BROKEN;
        snprintf(out->neterr, sizeof out->neterr, "libcurl could not start a request");
        asr_buf_free(&url);
        return;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:"); /* no 100-continue round trip */
    hdr = curl_slist_append(hdr, "Accept: */*");
    if (t->api_key && *t->api_key) {
        asr_buf_printf(&auth, "Authorization: Bearer %s", t->api_key);
        hdr = curl_slist_append(hdr, auth.data);
    }
    if (o->req_id) {
        asr_buf_t rid;
        asr_buf_init(&rid);
        asr_buf_printf(&rid, "X-Request-Id: %s", o->req_id);
        hdr = curl_slist_append(hdr, rid.data);
        asr_buf_free(&rid);
    }
    curl_mime *form = make_form(h, t, o);
    char errbuf[CURL_ERROR_SIZE] = "";
    long tmo = t->timeout_ms > 0 ? t->timeout_ms : 60000;
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, form);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 10000 ? tmo : 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "asrd-router");
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (o->cancel_cb) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)o);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    out->net = net_of(cc);
    if (cc == CURLE_OK) {
        long st = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
        out->status = (int)st;
        if (!strcmp(t->kind, "whisper.cpp"))
            convert_whisper_cpp(o, out);
    } else {
        snprintf(out->neterr, sizeof out->neterr, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
        size_t n = strlen(out->neterr);
        while (n && out->neterr[n - 1] == '\n')
            out->neterr[--n] = 0;
    }
    curl_mime_free(form);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    asr_buf_free(&url);
    asr_buf_free(&auth);
}
