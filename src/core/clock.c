/* core: the monotonic clock and every timed wait of the program.
 *
 * Why one home: a pthread condition variable measures its timeout on CLOCK_REALTIME unless told
 * otherwise, so a wall-clock step (NTP, an operator's `date -s`) used to stretch a 250 ms wait into
 * hours or cut it to nothing. Every condition variable that is waited on with a timeout is
 * initialised by asr_cond_init (its clock is CLOCK_MONOTONIC) and waited on only through
 * asr_cond_wait_until / asr_cond_timedwait_s, whose deadlines are asr_now_s() values: the two
 * always agree on the clock. Wall-clock time stays for timestamps that are shown or stored. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "core/core.h"

double asr_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void asr_cond_init(pthread_cond_t *cv) {
    pthread_condattr_t a;
    ASR_ASSERT(pthread_condattr_init(&a) == 0);
    ASR_ASSERT(pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0);
    ASR_ASSERT(pthread_cond_init(cv, &a) == 0);
    pthread_condattr_destroy(&a);
}

int asr_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline_s) {
    if (!(deadline_s > 0)) /* also NaN */
        deadline_s = 0;
    double sec = floor(deadline_s);
    struct timespec ts = {.tv_sec = (time_t)sec, .tv_nsec = (long)((deadline_s - sec) * 1e9)};
    if (ts.tv_nsec >= 1000000000L) { /* rounding of a value just below the next second */
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(cv, mu, &ts);
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}

int asr_cond_timedwait_s(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds) {
    return asr_cond_wait_until(cv, mu, asr_now_s() + (seconds > 0 ? seconds : 0));
}

void asr_sleep_s(double seconds) {
    if (!(seconds > 0))
        return;
    double sec = floor(seconds);
    struct timespec ts = {.tv_sec = (time_t)sec, .tv_nsec = (long)((seconds - sec) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
