/* api: the server-sent-event streams' common part (GET /api/events, GET /api/jobs/{id}/events):
 * the event format, and the reader that sends what is queued, polls every 250 ms when nothing is,
 * writes a keep-alive comment after 10 s of silence (proxies close idle connections), and ends
 * when the client leaves, the server drains, or the stream says it ended. */
#include <stdlib.h>
#include <unistd.h>

#include "api/api_int.h"

#define POLL_MS 250
#define KEEPALIVE_S 10.0

void asr__api_sse_init(asr_api_sse_t *s, asr_api_t *api, asr_http_req_t *req,
                       void (*poll)(asr_api_sse_t *), void (*release)(asr_api_sse_t *)) {
    s->api = api;
    s->req = req;
    s->poll = poll;
    s->release = release;
    s->ended = false;
    s->off = 0;
    asr_buf_init(&s->out);
}

void asr__api_sse_event(asr_api_sse_t *s, const char *event, json_t *data) {
    char *js = asr__api_json_dumps(data, JSON_COMPACT | JSON_PRESERVE_ORDER);
    asr_buf_printf(&s->out, "event: %s\ndata: %s\n\n", event, js ? js : "{}");
    free(js);
}

static ssize_t sse_read(void *ud, char *buf, size_t max) {
    asr_api_sse_t *s = ud;
    double idle_since = asr_now_s();
    for (;;) {
        size_t n = asr_http_stream_take(&s->out, &s->off, buf, max);
        if (n > 0)
            return (ssize_t)n;
        if (s->ended)
            return 0;
        if (asr_http_client_gone(s->req) || asr_http_draining(s->api->srv))
            return -1;
        if (asr_now_s() - idle_since > KEEPALIVE_S) {
            asr_buf_puts(&s->out, ": keep-alive\n\n");
            continue;
        }
        usleep(POLL_MS * 1000);
        s->poll(s);
    }
}

static void sse_free(void *ud) {
    asr_api_sse_t *s = ud;
    if (s->release)
        s->release(s);
    asr_buf_free(&s->out);
    free(s); /* the first member of its stream's struct: the whole of it */
}

void asr__api_sse_respond(asr_api_sse_t *s) {
    asr_http_respond_stream(s->req, 200, "text/event-stream", sse_read, s, sse_free);
}
