/* route: the pure parts of failover: which outcomes move a request to the next backend, and the
 * per-backend breaker (closed → open after N consecutive failures → half-open after a cooldown
 * with exactly one probe → closed on its success, open again on its failure). No clock and no
 * locks here: callers pass `now` and hold the router's mutex, so unit tests drive it directly.
 *
 * Out of memory is read only in error answers (an error status, or a 2xx whose JSON body is an
 * error object): a successful transcript is what was said, and a speaker may well say "out of
 * memory". */
#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "route/route.h"

#define OOM_SCAN_MAX (64 * 1024)
#define HINT_MAX_S 300.0

/* Case-insensitive search of `needle` (lower case) in the first `len` bytes of `hay`. */
static bool contains_ci(const char *hay, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        size_t k = 0;
        while (k < n && tolower((unsigned char)hay[i + k]) == needle[k])
            k++;
        if (k == n)
            return true;
    }
    return false;
}

bool asr_route_body_says_oom(const char *body, size_t len) {
    if (!body)
        return false;
    if (len > OOM_SCAN_MAX)
        len = OOM_SCAN_MAX;
    /* "CUDA out of memory" contains "out of memory"; "OutOfMemory" (Java/.NET/ONNX style) and
     * "out_of_memory" (error codes) are the other spellings backends use. */
    return contains_ci(body, len, "out of memory") || contains_ci(body, len, "outofmemory") ||
           contains_ci(body, len, "out_of_memory");
}

/* True when `body` is a JSON object with a non-null "error" member (OpenAI's error shape, and
 * whisper.cpp's {"error": "…"}, which it sends with status 200). */
static bool is_error_object(const char *body, size_t len) {
    json_error_t je;
    json_t *o = json_loadb(body, len, 0, &je);
    json_t *e = json_object_get(o, "error");
    bool yes = e && !json_is_null(e);
    json_decref(o);
    return yes;
}

bool asr_route_answer_is_oom(int status, const char *body, size_t len) {
    /* the phrase first: it is cheap and bounded, and most answers stop here unparsed */
    if (!asr_route_body_says_oom(body, len))
        return false;
    return status >= 400 || is_error_object(body, len);
}

asr_route_outcome_t asr_route_classify(asr_route_net_t net, int status, const char *body,
                                       size_t len) {
    if (net == ASR_ROUTE_NET_CANCELLED)
        return ASR_ROUTE_OUTCOME_FINAL;
    if (net != ASR_ROUTE_NET_OK)
        return ASR_ROUTE_OUTCOME_FAILOVER;
    if (status >= 200 && status < 300)
        return asr_route_answer_is_oom(status, body, len) ? ASR_ROUTE_OUTCOME_FAILOVER
                                                          : ASR_ROUTE_OUTCOME_OK;
    /* The input's fault: the same request fails everywhere, so it is the answer (unless the
     * backend blames the input for its own lack of memory). */
    if (status == 400 || status == 413 || status == 415 || status == 422)
        return asr_route_answer_is_oom(status, body, len) ? ASR_ROUTE_OUTCOME_FAILOVER
                                                          : ASR_ROUTE_OUTCOME_FINAL;
    if (status == 499) /* our client closed the request (a local attempt) */
        return ASR_ROUTE_OUTCOME_FINAL;
    /* 5xx, 429, and the backend's own refusals (401/403 bad key, 404 wrong URL or model, 405,
     * 408): another backend may well succeed. 1xx/3xx are not answers either. */
    return ASR_ROUTE_OUTCOME_FAILOVER;
}

const char *asr_route_net_name(asr_route_net_t net) {
    static const char *names[] = {"ok", "connect", "tls", "timeout", "broken", "cancelled"};
    return (unsigned)net < sizeof names / sizeof names[0] ? names[net] : "?";
}

asr_route_fail_t asr_route_fail_class(asr_route_net_t net, int status, const char *body,
                                      size_t len) {
    switch (net) {
    case ASR_ROUTE_NET_CONNECT:
        return ASR_ROUTE_FAIL_REFUSED;
    case ASR_ROUTE_NET_TIMEOUT:
        return ASR_ROUTE_FAIL_TIMEOUT;
    case ASR_ROUTE_NET_TLS:
        return ASR_ROUTE_FAIL_TLS;
    case ASR_ROUTE_NET_OK:
        break;
    default:
        return ASR_ROUTE_FAIL_BROKEN;
    }
    /* out of memory first: a GPU server says so with 500, 503 or even 400 */
    if (asr_route_answer_is_oom(status, body, len))
        return ASR_ROUTE_FAIL_OOM;
    if (status == 429 || status == 503)
        return ASR_ROUTE_FAIL_BUSY;
    if (status >= 500)
        return ASR_ROUTE_FAIL_5XX;
    if (status >= 400)
        return ASR_ROUTE_FAIL_REJECTED;
    return ASR_ROUTE_FAIL_BROKEN; /* 1xx/3xx, or a 2xx error object: not an answer */
}

const char *asr_route_fail_name(asr_route_fail_t c) {
    static const char *names[ASR_ROUTE_FAIL_N] = {"refused", "timeout",  "tls",
                                                  "broken",  "5xx",      "out_of_memory",
                                                  "busy",    "rejected", "unavailable"};
    return (unsigned)c < ASR_ROUTE_FAIL_N ? names[c] : "?";
}

/* The first string among an error object's members backends use for their message. */
static const char *message_member(json_t *o) {
    json_t *e = json_object_get(o, "error");
    if (json_is_string(e))
        return json_string_value(e); /* whisper.cpp: {"error": "…"} */
    const char *keys[] = {"message", "detail", "msg"};
    json_t *src[] = {e, o};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(src[k], keys[i]);
            if (json_is_string(v))
                return json_string_value(v);
            if (json_is_array(v)) /* FastAPI's validation errors: detail [{msg, …}] */
                v = json_object_get(json_array_get(v, 0), "msg");
            if (json_is_string(v))
                return json_string_value(v);
        }
    return NULL;
}

bool asr_route_error_message(const char *body, size_t len, char *out, size_t out_len) {
    if (!out_len)
        return false;
    json_error_t je;
    json_t *o = body && len ? json_loadb(body, len, 0, &je) : NULL;
    const char *m = message_member(o);
    const char *p = m ? m : body ? body : "";
    const char *end = m ? m + strlen(m) : p + len;
    size_t k = 0;
    bool space = false;
    for (; p < end && *p && k + 1 < out_len; p++) {
        if (isspace((unsigned char)*p)) {
            space = k > 0;
            continue;
        }
        if (space && k + 2 < out_len)
            out[k++] = ' ';
        space = false;
        out[k++] = *p;
    }
    /* a cut may split a UTF-8 sequence: drop its lead and continuation bytes */
    if (p < end && ((unsigned char)*p & 0xC0) == 0x80) {
        while (k > 0 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0)
            k--;
    }
    out[k] = 0;
    /* a body in another encoding: its stray bytes become '?', so the text stays valid UTF-8 for
     * JSON (jansson refuses anything else) and log lines */
    for (size_t i = 0; i < k;) {
        uint32_t cp;
        int l = asr_utf8_next((const uint8_t *)out + i, k - i, &cp);
        if (l > 0) {
            i += (size_t)l;
            continue;
        }
        for (int j = 0; j < -l; j++)
            out[i++] = '?';
    }
    json_decref(o);
    return m != NULL;
}

void asr_route_breaker_init(asr_route_breaker_t *b, int threshold, double cooldown_s) {
    memset(b, 0, sizeof *b);
    b->threshold = threshold < 1 ? 1 : threshold;
    b->cooldown_s = cooldown_s < 0 ? 0 : cooldown_s;
}

static void breaker_open(asr_route_breaker_t *b, double now) {
    b->state = ASR_ROUTE_BREAKER_OPEN;
    b->opened_at = now;
    b->probe_in_flight = false;
    b->n_opened++;
}

bool asr_route_breaker_acquire(asr_route_breaker_t *b, double now, bool *probe) {
    *probe = false;
    if (now < b->skip_until)
        return false;
    switch (b->state) {
    case ASR_ROUTE_BREAKER_CLOSED:
        return true;
    case ASR_ROUTE_BREAKER_OPEN:
        if (now - b->opened_at < b->cooldown_s)
            return false;
        b->state = ASR_ROUTE_BREAKER_HALF_OPEN;
        b->probe_in_flight = false;
        __attribute__((fallthrough)); /* the first caller past the cooldown is the probe */
    case ASR_ROUTE_BREAKER_HALF_OPEN:
        if (b->probe_in_flight)
            return false;
        b->probe_in_flight = true;
        b->n_probes++;
        *probe = true;
        return true;
    }
    return false;
}

void asr_route_breaker_release(asr_route_breaker_t *b, double now, int result, bool probe) {
    if (probe)
        b->probe_in_flight = false;
    if (result > 0) {
        b->state = ASR_ROUTE_BREAKER_CLOSED;
        b->failures = 0;
        return;
    }
    if (result == 0)
        return; /* a neutral probe leaves it half-open: the next caller probes */
    b->failures++;
    if (probe || b->state == ASR_ROUTE_BREAKER_HALF_OPEN)
        breaker_open(b, now);
    else if (b->state == ASR_ROUTE_BREAKER_CLOSED && b->failures >= b->threshold)
        breaker_open(b, now);
    /* already open (a request that started before it opened): stays open, cooldown unchanged */
}

void asr_route_breaker_hint(asr_route_breaker_t *b, double now, double seconds) {
    if (!(seconds > 0))
        return;
    if (seconds > HINT_MAX_S)
        seconds = HINT_MAX_S;
    if (now + seconds > b->skip_until)
        b->skip_until = now + seconds;
}

asr_route_breaker_state_t asr_route_breaker_state(const asr_route_breaker_t *b, double now) {
    if (b->state == ASR_ROUTE_BREAKER_OPEN && now - b->opened_at >= b->cooldown_s)
        return ASR_ROUTE_BREAKER_HALF_OPEN;
    return b->state;
}

const char *asr_route_breaker_state_name(asr_route_breaker_state_t s) {
    return s == ASR_ROUTE_BREAKER_OPEN        ? "open"
           : s == ASR_ROUTE_BREAKER_HALF_OPEN ? "half_open"
                                              : "closed";
}
