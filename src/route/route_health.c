/* route: "Test connection" and background health checks. Both send the built-in speech clip (a
 * real 2.9-s recording, embedded in the binary at build time like the VAD weights) to one backend
 * and record the outcome in asr_health; the outcome also feeds the backend's breaker (a success
 * closes it, so a repaired backend is back in the rotation without waiting for a probe).
 *
 * The health thread checks only remote backends: the local engine's health is /health, and a
 * transcription every interval would take a slot from real requests. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/embed.h"
#include "route/route_int.h"

/* The built-in clip (assets/clips/en_ldc93s1.wav; CMake always defines ASR_ROUTE_CLIP_FILE). */
ASR_EMBED_FILE(asr__route_clip, ASR_ROUTE_CLIP_FILE);

#define HEALTH_KEEP 1000 /* rows kept per config */

static pthread_once_t g_clip_once = PTHREAD_ONCE_INIT;
static char *g_clip;
static size_t g_clip_len;

static const char *clip_override(void) {
    const char *p = getenv("ASRD_TEST_CLIP");
    return p && *p ? p : NULL;
}

static void load_clip(void) {
    if (asr_read_file(clip_override(), &g_clip, &g_clip_len) != ASR_OK) {
        g_clip = NULL;
        g_clip_len = 0;
    }
}

asr_err_t asr__route_clip(const unsigned char **data, size_t *len) {
    if (!clip_override()) {
        *data = asr__route_clip_start;
        *len = (size_t)(asr__route_clip_stop - asr__route_clip_start);
        return ASR_OK;
    }
    pthread_once(&g_clip_once, load_clip);
    *data = (const unsigned char *)g_clip;
    *len = g_clip_len;
    return g_clip ? ASR_OK : ASR_ERR_NOT_FOUND;
}

/* Writes the clip to a temp file under dir; path gets its name. */
static asr_err_t write_clip(const char *dir, char *path, size_t path_len) {
    const unsigned char *data;
    size_t len;
    if (asr__route_clip(&data, &len) != ASR_OK)
        return ASR_ERR_NOT_FOUND;
    snprintf(path, path_len, "%s/upload-route-clip-XXXXXX.wav", dir);
    int fd = mkstemps(path, 4);
    if (fd < 0)
        return ASR_ERR_IO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
    if (off != len) {
        unlink(path);
        return ASR_ERR_IO;
    }
    return ASR_OK;
}

/* The transcript of a JSON answer ({"text": …}), else the body itself (text format). */
static void answer_text(const asr_route_result_t *res, char *dst, size_t cap) {
    dst[0] = 0;
    if (!res->body)
        return;
    json_error_t je;
    json_t *o = json_loadb(res->body, res->body_len, 0, &je);
    const char *t = json_string_value(json_object_get(o, "text"));
    snprintf(dst, cap, "%s", t ? t : (o ? "" : res->body));
    json_decref(o);
}

/* The error of a failed answer: the backend's message (asr_route_error_message) when its body
 * has one. */
static void answer_error(const asr_route_result_t *res, char *dst, size_t cap) {
    char m[384];
    if (asr_route_error_message(res->body, res->body_len, m, sizeof m))
        snprintf(dst, cap, "HTTP %d: %s", res->status, m);
    else if (res->error[0])
        snprintf(dst, cap, "%s", res->error);
    else
        snprintf(dst, cap, "HTTP %d: %.300s", res->status, res->body ? res->body : "");
}

asr_err_t asr_route_test(asr_router_t *r, int64_t id, asr_route_test_result_t *out) {
    memset(out, 0, sizeof *out);
    asr_store_config_t c = {0};
    asr_err_t e = asr_store_config_get(r->store, id, &c);
    if (e != ASR_OK)
        return e;
    asr__route_target_t t;
    asr__route_target_from_config(r->store, &c, &t);
    asr_store_config_clear(&c);
    char path[4200];
    if ((e = write_clip(r->tmp_dir, path, sizeof path)) != ASR_OK) {
        snprintf(out->error, sizeof out->error, "%s",
                 e == ASR_ERR_NOT_FOUND ? "the test clip $ASRD_TEST_CLIP cannot be read"
                                        : "cannot write the test clip to the data directory");
        asr__route_target_free(&t);
        return ASR_OK;
    }
    char rid[32];
    snprintf(rid, sizeof rid, "test-%lld", (long long)id);
    asr_route_opts_t o = {
        .path = path, .filename = "asrd-test-clip.wav", .response_format = "json", .req_id = rid};
    asr_route_result_t res;
    double t0 = asr_now_s();
    e = asr__route_attempt_one(r, &t, &o, &res);
    out->latency_ms = (int)((asr_now_s() - t0) * 1000.0 + 0.5);
    out->status = res.status;
    out->ok = e == ASR_OK && res.status >= 200 && res.status < 300;
    if (out->ok)
        answer_text(&res, out->text, sizeof out->text);
    else
        answer_error(&res, out->error, sizeof out->error);
    snprintf(out->model, sizeof out->model, "%s", res.model ? res.model : "");
    unlink(path);
    asr_route_result_clear(&res);
    if (asr_store_health_add(r->store, id, out->ok, out->latency_ms, out->ok ? NULL : out->error) !=
        ASR_OK)
        ASR_LOG(ASR_LOG_WARN, "msg=route_health_write_failed backend=\"%s\" error=\"%s\"", t.name,
                asr_store_errmsg(r->store));
    asr__route_note_health(r, id, out->ok);
    ASR_LOG(out->ok ? ASR_LOG_INFO : ASR_LOG_WARN,
            "msg=route_check backend=\"%s\" ok=%d status=%d ms=%d", t.name, out->ok, out->status,
            out->latency_ms);
    asr__route_target_free(&t);
    return ASR_OK;
}

static void *health_main(void *arg) {
    asr_router_t *r = arg;
    unsigned rounds = 0;
    bool checks = r->p.health_interval_s > 0;
    double next_round = asr_now_s() + r->p.health_interval_s;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        /* wakes every second to see backend changes made by other nodes (asr__route_watch) */
        double until = asr_now_s() + 1.0;
        if (checks && next_round < until)
            until = next_round;
        while (!r->stop && asr_cond_wait_until(&r->cv, &r->mu, until) != ETIMEDOUT)
            ;
        if (r->stop)
            break;
        pthread_mutex_unlock(&r->mu);
        asr__route_watch(r);
        if (!checks || asr_now_s() < next_round) {
            pthread_mutex_lock(&r->mu);
            continue;
        }
        next_round = asr_now_s() + r->p.health_interval_s;
        asr__route_target_t *v;
        int n;
        asr__route_remote_targets(r, &v, &n);
        for (int i = 0; i < n; i++) {
            asr_route_test_result_t res;
            pthread_mutex_lock(&r->mu);
            bool stop = r->stop;
            pthread_mutex_unlock(&r->mu);
            if (!stop)
                asr_route_test(r, v[i].id, &res);
            asr__route_target_free(&v[i]);
        }
        free(v);
        if (++rounds % 100 == 1)
            asr_store_health_prune(r->store, HEALTH_KEEP);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

void asr__route_health_start(asr_router_t *r) {
    r->stop = false;
    r->health_running = pthread_create(&r->health, NULL, health_main, r) == 0;
    if (!r->health_running)
        ASR_LOG(ASR_LOG_ERROR, "msg=route_health_thread_failed");
}

void asr__route_health_stop(asr_router_t *r) {
    if (!r->health_running)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->health, NULL);
    r->health_running = false;
}
