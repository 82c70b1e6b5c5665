/* Unit tests for src/core's shared helpers: timed waits on the monotonic clock (a condition
 * variable made by asr_cond_init measures its deadline on CLOCK_MONOTONIC, so a wall-clock jump
 * cannot stretch or cut it), mkdir -p and the one UTF-8 decoder.
 *
 * The waits are checked with a lower bound that must hold exactly (a wait never ends early) and an
 * upper bound with a wide margin for a loaded 2-core machine. Also: a log line as JSON
 * (asr_log_line_json). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/core.h"

#define SLACK_S 3.0 /* how late a wait may end on a busy machine */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool flag;
} waiter_t;

static void waiter_init(waiter_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    asr_cond_init(&w->cv);
    w->flag = false;
}

static void waiter_deinit(waiter_t *w) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

static void test_timedwait_waits_the_time(void **state) {
    (void)state;
    waiter_t w;
    waiter_init(&w);
    pthread_mutex_lock(&w.mu);
    double t0 = asr_now_s();
    int rc = 0;
    while (rc != ETIMEDOUT) /* a spurious wake-up returns 0: wait again until the deadline */
        rc = asr_cond_wait_until(&w.cv, &w.mu, t0 + 0.3);
    double dt = asr_now_s() - t0;
    pthread_mutex_unlock(&w.mu);
    assert_true(dt >= 0.3 - 1e-3);
    assert_true(dt < 0.3 + SLACK_S);
    /* the relative form: one call (no signal is sent, so it times out) */
    pthread_mutex_lock(&w.mu);
    t0 = asr_now_s();
    rc = asr_cond_timedwait_s(&w.cv, &w.mu, 0.2);
    dt = asr_now_s() - t0;
    pthread_mutex_unlock(&w.mu);
    if (rc == ETIMEDOUT)
        assert_true(dt >= 0.2 - 1e-3);
    assert_true(dt < 0.2 + SLACK_S);
    waiter_deinit(&w);
}

/* The condition variable's own clock is CLOCK_MONOTONIC: a deadline taken from that clock and
 * handed straight to pthread_cond_timedwait is honoured. On a CLOCK_REALTIME condition variable
 * (pthread's default) the same deadline (seconds since boot) lies decades in the past, and the
 * wait ends at once. */
static void test_cond_clock_is_monotonic(void **state) {
    (void)state;
    waiter_t w;
    waiter_init(&w);
    struct timespec now, dl;
    clock_gettime(CLOCK_MONOTONIC, &now);
    dl = now;
    dl.tv_nsec += 300 * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&w.mu);
    double t0 = asr_now_s();
    int rc = 0;
    while (rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w.cv, &w.mu, &dl);
    double dt = asr_now_s() - t0;
    pthread_mutex_unlock(&w.mu);
    assert_true(dt >= 0.3 - 0.01);
    assert_true(dt < 0.3 + SLACK_S);
    /* and the deadline helper agrees with asr_now_s: a deadline in the past returns at once */
    pthread_mutex_lock(&w.mu);
    t0 = asr_now_s();
    assert_int_equal(asr_cond_wait_until(&w.cv, &w.mu, t0 - 1.0), ETIMEDOUT);
    assert_true(asr_now_s() - t0 < 0.1 + SLACK_S);
    pthread_mutex_unlock(&w.mu);
    waiter_deinit(&w);
}

static void *signal_main(void *arg) {
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->flag = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void test_timedwait_wakes_on_signal(void **state) {
    (void)state;
    waiter_t w;
    waiter_init(&w);
    pthread_t th;
    pthread_mutex_lock(&w.mu);
    assert_int_equal(pthread_create(&th, NULL, signal_main, &w), 0);
    double t0 = asr_now_s();
    while (!w.flag && asr_now_s() - t0 < 30)
        asr_cond_timedwait_s(&w.cv, &w.mu, 30);
    double dt = asr_now_s() - t0;
    pthread_mutex_unlock(&w.mu);
    pthread_join(th, NULL);
    assert_true(w.flag);
    assert_true(dt < 30); /* woken by the signal, not by the 30 s deadline */
    waiter_deinit(&w);
}

/* The one UTF-8 decoder: valid forms, and the maximal invalid subpart of bad ones. */
static void test_utf8_next(void **state) {
    (void)state;
    uint32_t cp;
    assert_int_equal(asr_utf8_next((const uint8_t *)"A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xe4\xbd\xa0", 3, &cp), 3);
    assert_int_equal(cp, 0x4F60);
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xe4\xbd", 2, &cp), -2);     /* truncated */
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xed\xa0\x80", 3, &cp), -1); /* surrogate */
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xc0\xaf", 2, &cp), -1);     /* overlong */
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xf4\x90", 2, &cp), -1);     /* > 10FFFF */
    assert_int_equal(asr_utf8_next((const uint8_t *)"\xf0\x9f\x98x", 4, &cp), -3);
    assert_int_equal(asr_utf8_next((const uint8_t *)"\x80", 1, &cp), -1);
}

static void test_mkdir_p(void **state) {
    (void)state;
    char root[] = "/tmp/asrd-core-XXXXXX", path[256], err[256] = "";
    assert_non_null(mkdtemp(root));
    snprintf(path, sizeof path, "%s/a/b/c", root);
    assert_int_equal(asr_mkdir_p(path, 0755, err, sizeof err), ASR_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(asr_mkdir_p(path, 0755, err, sizeof err), ASR_OK); /* exists: fine */
    char file[300];
    snprintf(file, sizeof file, "%s/a/f", root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/a/f/g", root); /* a file in the way */
    assert_int_equal(asr_mkdir_p(path, 0755, err, sizeof err), ASR_ERR_IO);
    assert_non_null(strstr(err, "cannot create directory"));
    assert_int_equal(asr_mkdir_p(file, 0755, err, sizeof err), ASR_ERR_IO);
    assert_non_null(strstr(err, "is not a directory"));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

/* A log line as JSON: ts first, then the pairs in order; numbers and booleans typed, quoted values
 * unquoted and unescaped, other text in "text", and what JSON must escape escaped. */
static void check_json(const char *line, const char *want) {
    asr_buf_t b;
    asr_buf_init(&b);
    asr_log_line_json("T", line, &b);
    assert_string_equal(b.data, want);
    asr_buf_free(&b);
}

static void test_log_line_json(void **state) {
    (void)state;
    check_json("level=INFO msg=access status=200 ms=1.5 ok=true path=/a?b=1",
               "{\"ts\":\"T\",\"level\":\"INFO\",\"msg\":\"access\",\"status\":200,"
               "\"ms\":1.5,\"ok\":true,\"path\":\"/a?b=1\"}");
    check_json("level=WARN msg=x err=\"a \\\"quoted\\\" b\" n=007 v=-2e3 f=false",
               "{\"ts\":\"T\",\"level\":\"WARN\",\"msg\":\"x\",\"err\":\"a \\\"quoted\\\" b\","
               "\"n\":\"007\",\"v\":-2e3,\"f\":false}");
    check_json("level=INFO msg=y name=\"tab\there\" free words",
               "{\"ts\":\"T\",\"level\":\"INFO\",\"msg\":\"y\",\"name\":\"tab\\u0009here\","
               "\"text\":\"free words\"}");
    check_json("level=INFO msg=z empty=\"\" x=", "{\"ts\":\"T\",\"level\":\"INFO\",\"msg\":\"z\","
                                                 "\"empty\":\"\",\"x\":\"\"}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timedwait_waits_the_time),
        cmocka_unit_test(test_cond_clock_is_monotonic),
        cmocka_unit_test(test_timedwait_wakes_on_signal),
        cmocka_unit_test(test_utf8_next),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_log_line_json),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
