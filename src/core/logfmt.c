/* core: log lines as JSON. A log line is `level=L key=value key="quoted value" …` (ASR_LOG's
 * convention); asr_log_line_json turns one into a JSON object on one line: ts first, then every
 * key=value pair as a member in order (level, msg, …). A value that is a JSON number or
 * true/false becomes one; any other value a string (quoted values unquoted, \" and \\ inside
 * them unescaped). Text that is not key=value goes to a "text" member. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "core/core.h"

static void put_json_string(asr_buf_t *out, const char *s, size_t n) {
    asr_buf_puts(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            asr_buf_append(out, e, 2);
        } else if (c < 0x20) {
            asr_buf_printf(out, "\\u%04x", c);
        } else {
            asr_buf_append(out, &s[i], 1);
        }
    }
    asr_buf_puts(out, "\"");
}

/* A JSON number (RFC 8259 grammar), of at most 24 characters. */
static bool is_json_number(const char *s, size_t n) {
    size_t i = 0;
    if (n == 0 || n > 24)
        return false;
    if (s[i] == '-')
        i++;
    if (i >= n || !isdigit((unsigned char)s[i]))
        return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return false;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    return i == n;
}

static bool is_key_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

void asr_log_line_json(const char *ts, const char *line, asr_buf_t *out) {
    asr_buf_t text;
    asr_buf_init(&text);
    asr_buf_puts(out, "{\"ts\":");
    put_json_string(out, ts, strlen(ts));
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *k = p;
        while (is_key_char(*p))
            p++;
        if (p == k || *p != '=') { /* not key=value: a word of free text */
            const char *w = k;
            while (*p && *p != ' ')
                p++;
            if (text.len)
                asr_buf_puts(&text, " ");
            asr_buf_append(&text, w, (size_t)(p - w));
            continue;
        }
        size_t klen = (size_t)(p - k);
        p++; /* '=' */
        asr_buf_puts(out, ",");
        put_json_string(out, k, klen);
        asr_buf_puts(out, ":");
        if (*p == '"') {
            asr_buf_t v;
            asr_buf_init(&v);
            p++;
            /* ends at a quote followed by a space or the end; \" and \\ are escapes */
            while (*p && !(*p == '"' && (p[1] == ' ' || p[1] == 0))) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                asr_buf_append(&v, p, 1);
                p++;
            }
            if (*p == '"')
                p++;
            put_json_string(out, v.data ? v.data : "", v.len);
            asr_buf_free(&v);
            continue;
        }
        const char *v = p;
        while (*p && *p != ' ')
            p++;
        size_t vlen = (size_t)(p - v);
        if (is_json_number(v, vlen) || (vlen == 4 && !memcmp(v, "true", 4)) ||
            (vlen == 5 && !memcmp(v, "false", 5)))
            asr_buf_append(out, v, vlen);
        else
            put_json_string(out, v, vlen);
    }
    if (text.len) {
        asr_buf_puts(out, ",\"text\":");
        put_json_string(out, text.data, text.len);
    }
    asr_buf_free(&text);
    asr_buf_puts(out, "}");
}
