/* cli: one HTTP request to a running asrd's API, for the subcommands that drive a server
 * (`asrd ps`, `asrd configs`): the URL is the server's base URL plus the API path, the admin or
 * API key goes in `Authorization: Bearer`, a JSON body is posted with its content type.
 *
 * Invariant: the answer's bytes are appended to the caller's buffer whatever the status, so a
 * caller can show the server's own error message; status 0 means no HTTP answer at all. */
#include <curl/curl.h>
#include <string.h>

#include "cli/cli.h"

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    asr_buf_append(ud, p, size * n);
    return size * n;
}

long asr__cli_api_request(const char *base_url, const char *key, const char *method,
                          const char *path, const char *json_body, long timeout_s, asr_buf_t *out,
                          char *err, size_t err_len) {
    asr_buf_t url, auth;
    asr_buf_init(&url);
    asr_buf_init(&auth);
    asr_buf_printf(&url, "%s%s", base_url, path);
    bool post = json_body || !strcmp(method, "POST");
    CURL *h = curl_easy_init();
    struct curl_slist *hdr =
        post ? curl_slist_append(NULL, "Content-Type: application/json") : NULL;
    if (key && *key) {
        asr_buf_printf(&auth, "Authorization: Bearer %s", key);
        hdr = curl_slist_append(hdr, auth.data);
    }
    long status = 0;
    CURLcode cc = CURLE_FAILED_INIT;
    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, url.data);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (post)
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
        cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
    }
    curl_slist_free_all(hdr);
    if (cc != CURLE_OK) {
        asr_errf(err, err_len, "cannot reach %s: %s", base_url, curl_easy_strerror(cc));
        status = 0;
    }
    asr_buf_free(&url);
    asr_buf_free(&auth);
    return status;
}
