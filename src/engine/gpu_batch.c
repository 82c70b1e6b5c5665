/* engine: the GPU model's batcher thread. It is the only thread that calls the device: it opens
 * it, uploads the weights (the init function gpu_model.c gives it), then serves the jobs streams
 * submit (asr__gpu_submit: enqueue, wait on a condition variable; no polling, no sleeps). Each
 * round takes every pending job: the decoder steps of all streams, and the prompt blocks of
 * streams starting a window, run as one batched decoder pass (up to max_batch streams and
 * max_rows rows), the encoder windows as one batched pass (up to max_batch windows), the other
 * jobs one by one; each group's jobs are marked done as soon as the group is finished.
 *
 * The gather rule. When a batched decoder pass finishes, all its streams wake at once, run their
 * CPU search and resubmit at slightly different times; a batcher that ran whatever had arrived
 * would split the batch (measured on the host device, 6 concurrent transcriptions: 2.81 streams
 * per step of a possible 6). So after a round that ran decoder jobs, the batcher waits (timed wait
 * on cv_work, which every submission signals) until each stream of that round has submitted again
 * (any job counts: a STEP, or an ENCODE, a single job or a slot close of a stream that left
 * decoding), or until a deadline. A stream that returns to its caller and submits nothing more
 * (its transcription ended) costs the others at most that deadline. The deadline is measured:
 * GATHER_MULT times an EMA (weight 1/8) of the time from a pass's completion to the next STEP of
 * each of its streams (the CPU-side search; a late STEP is measured too, so a deadline that was
 * too short grows again), within [50 us (gather.c), GATHER_MAX_S]: 2 ms is a few percent of a
 * batched large-model step on a GPU and far beyond a greedy search's gap (tens of us), so a stream
 * that left costs little; 50 us keeps a scheduler's wake-up jitter covered when the EMA is tiny.
 * ASRD_GPU_GATHER_US=N (read at load) fixes the deadline at N us instead: the tests use a long
 * one to check the rule itself on a loaded CPU, where a descheduled stream thread can miss 2 ms.
 * Encoder windows that arrive during the wait batch together as before.
 *
 * Invariants: a stream has at most one job in flight (it waits for it), so jobs of one stream
 * never reorder; a stream's pending cache copies are queued before any of its jobs runs. A device
 * failure fails the jobs of the group it happened in (each group ends with a sync, so the failure
 * is that group's); a recoverable one is then cleared and later groups run as before, a lost
 * context (g->lost) fails every queued and later job at once, except slot closes, which only free
 * (no device call but frees is made on a lost device). The batcher never
 * reads a stream after its job is finished: the gather counts arrivals in g (g->gather.missing),
 * each stream only carries the mark of its last pass (gather_mark, read and cleared by submit). */
#include <stdlib.h>
#include <string.h>

#include "engine/gpu_int.h"

#define GATHER_MAX_S 2e-3

/* Under g->mu, the context lost: every queued job fails now, but slot closes (they free). */
static void fail_queued(struct asr__gpu_model *g) {
    asr__gpu_job_t *keep = NULL, *keep_tail = NULL;
    for (asr__gpu_job_t *j = g->head, *next; j; j = next) {
        next = j->next;
        if (j->kind == ASR_GPU_JOB_SLOT_CLOSE) {
            j->next = NULL;
            if (keep_tail)
                keep_tail->next = j;
            else
                keep = j;
            keep_tail = j;
        } else {
            j->rc = ASR_ERR_GPU;
            j->done = true; /* its stream may return and free it now: no link read after this */
        }
    }
    g->head = keep;
    g->tail = keep_tail;
    pthread_cond_broadcast(&g->cv_done);
}

asr_err_t asr__gpu_check(struct asr__gpu_model *g) {
    char why[256] = "";
    asr_err_t rc = asr_dev_error(g->dev, why, sizeof why);
    if (rc == ASR_OK)
        return ASR_OK;
    bool was_lost = atomic_load(&g->lost);
    bool lost = !asr_dev_error_clear(g->dev); /* recoverable: cleared; lost: stays */
    if (lost)
        asr_dev_error(g->dev, why, sizeof why); /* clearing may have found the loss */
    pthread_mutex_lock(&g->mu);
    snprintf(g->err, sizeof g->err, "%s", why);
    if (lost && !was_lost) {
        atomic_store(&g->lost, true);
        fail_queued(g);
    }
    pthread_mutex_unlock(&g->mu);
    if (!was_lost)
        ASR_LOG(ASR_LOG_ERROR, "msg=gpu_failed device=%s lost=%d reason=\"%s\"", g->m->device,
                (int)lost, why);
    return rc;
}

void asr__gpu_errmsg(struct asr__gpu_model *g, char *buf, size_t len) {
    pthread_mutex_lock(&g->mu);
    snprintf(buf, len, "%s", g->err[0] ? g->err : asr_strerror(ASR_ERR_GPU));
    pthread_mutex_unlock(&g->mu);
}

/* Marks jobs done with the device's state, and wakes their streams. */
static void finish(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int n) {
    asr_err_t rc = asr__gpu_check(g);
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < n; i++) {
        if (rc != ASR_OK && jobs[i]->rc == ASR_OK)
            jobs[i]->rc = rc;
        jobs[i]->done = true;
    }
    pthread_cond_broadcast(&g->cv_done);
    pthread_mutex_unlock(&g->mu);
}

static void run_single(struct asr__gpu_model *g, asr__gpu_job_t *j) {
    if (atomic_load(&g->lost) && j->kind != ASR_GPU_JOB_SLOT_CLOSE) {
        j->rc = ASR_ERR_GPU; /* queued before the loss was seen: nothing runs */
        finish(g, &j, 1);
        return;
    }
    if (j->kind != ASR_GPU_JOB_SLOT_OPEN && j->kind != ASR_GPU_JOB_SLOT_CLOSE)
        asr__gpu_apply_copies(g, j->s);
    switch (j->kind) {
    case ASR_GPU_JOB_FORWARD:
        asr__gpu_run_forward(g, j);
        break;
    case ASR_GPU_JOB_LOGITS_ROW:
        asr__gpu_run_logits_row(g, j);
        break;
    case ASR_GPU_JOB_SLOT_OPEN:
        j->rc = asr__gpu_slot_open_dev(g, j->s);
        break;
    case ASR_GPU_JOB_SLOT_CLOSE:
        asr__gpu_slot_close_dev(g, j->s);
        break;
    default:
        break;
    }
    finish(g, &j, 1);
}

/* Runs jobs[0..n): decoder jobs (dec: steps and prompt blocks) in passes of at most max_batch
 * streams and max_rows rows, or encoder windows in passes of at most max_batch windows. */
static void run_batched(struct asr__gpu_model *g, asr__gpu_job_t **jobs, int n, bool dec) {
    for (int i0 = 0, k; i0 < n; i0 += k) {
        int rows = 0;
        for (k = 0; i0 + k < n && k < g->max_batch; k++) {
            if (dec && k > 0 && rows + jobs[i0 + k]->n > g->max_rows)
                break;
            rows += dec ? jobs[i0 + k]->n : 1;
        }
        const bool lost = atomic_load(&g->lost);
        for (int i = 0; i < k; i++)
            if (!lost)
                asr__gpu_apply_copies(g, jobs[i0 + i]->s);
        if (lost) {
            for (int i = 0; i < k; i++)
                jobs[i0 + i]->rc = ASR_ERR_GPU;
        } else if (asr_dev_error(g->dev, NULL, 0) == ASR_OK) {
            if (dec)
                asr__gpu_run_decode(g, jobs + i0, k);
            else
                asr__gpu_run_encode(g, jobs + i0, k);
        }
        pthread_mutex_lock(&g->mu);
        asr_batch_stats_t *st = &g->stats;
        if (dec) { /* the gather set (while the streams wait: their memory is theirs again after
                      finish) */
            for (int i = 0; i < k; i++)
                asr__gather_ran(&g->gather, &jobs[i0 + i]->s->g->gather_mark);
            asr__gather_pass_end(&g->gather);
            st->dec_batches++, st->dec_rows += rows, st->dec_streams += k;
            st->max_dec_streams = k > st->max_dec_streams ? k : st->max_dec_streams;
            st->max_dec_rows = rows > st->max_dec_rows ? rows : st->max_dec_rows;
        } else {
            st->enc_batches++, st->enc_windows += k;
            st->max_enc_batch = k > st->max_enc_batch ? k : st->max_enc_batch;
        }
        pthread_mutex_unlock(&g->mu);
        finish(g, jobs + i0, k);
    }
}

/* One round: the decoder jobs first (steps, and the prompt blocks of streams starting a window:
 * they join the same pass), then the single jobs, then the encoder windows. The list is read
 * into arrays first: a finished job belongs to its stream again (its memory may be gone), so no
 * link is followed after the first finish. */
static void run_round(struct asr__gpu_model *g, asr__gpu_job_t *list) {
    asr__gpu_job_t **decs = g->round, **encs = decs + g->round_cap;
    asr__gpu_job_t **singles = encs + g->round_cap;
    int n_decs = 0, n_encs = 0, n_singles = 0;
    for (asr__gpu_job_t *j = list; j; j = j->next)
        if (j->kind == ASR_GPU_JOB_STEP || (j->kind == ASR_GPU_JOB_FORWARD && !j->s->align_capture))
            decs[n_decs++] = j;
        else if (j->kind == ASR_GPU_JOB_ENCODE)
            encs[n_encs++] = j;
        else
            singles[n_singles++] = j;
    if (n_decs) {
        pthread_mutex_lock(&g->mu);
        asr__gather_round(&g->gather);
        pthread_mutex_unlock(&g->mu);
        run_batched(g, decs, n_decs, true);
    }
    for (int i = 0; i < n_singles; i++)
        run_single(g, singles[i]);
    if (n_encs)
        run_batched(g, encs, n_encs, false);
}

/* Under g->mu: the arrays of a round of the pending jobs (grown only past the largest round so
 * far, never freed before the batcher ends: no allocation per round). */
static void round_arrays(struct asr__gpu_model *g) {
    int n = 0;
    for (asr__gpu_job_t *j = g->head; j; j = j->next)
        n++;
    if (n <= g->round_cap)
        return;
    int cap = g->round_cap ? g->round_cap : 16;
    while (cap < n)
        cap *= 2;
    free(g->round);
    g->round = asr_xmalloc((size_t)cap * 3 * sizeof *g->round);
    g->round_cap = cap;
}

typedef struct {
    struct asr__gpu_model *g;
    asr_err_t (*init)(struct asr__gpu_model *);
    void (*fini)(struct asr__gpu_model *);
} start_t;

static void *batcher_main(void *arg) {
    start_t st = *(start_t *)arg;
    struct asr__gpu_model *g = st.g;
    char why[256] = "";
    asr_dev_kind_t kind = g->spec.kind == ASR_DEVSPEC_HOST ? ASR_DEV_HOST : ASR_DEV_CUDA;
    asr_err_t rc = asr_dev_open(kind, g->spec.index, &g->dev, why, sizeof why);
    if (rc == ASR_OK && (rc = asr_dev_bind(g->dev)) != ASR_OK)
        asr_dev_error(g->dev, why, sizeof why);
    if (rc == ASR_OK)
        rc = st.init(g);
    if (rc != ASR_OK && !why[0] && g->dev) /* an operation of the load failed: its reason */
        asr_dev_error(g->dev, why, sizeof why);
    pthread_mutex_lock(&g->mu);
    if (rc != ASR_OK && !g->err[0])
        snprintf(g->err, sizeof g->err, "%s", why[0] ? why : asr_strerror(rc));
    g->init_rc = rc;
    g->ready = true;
    pthread_cond_broadcast(&g->cv_done);
    while (rc == ASR_OK) {
        while (!g->head && !g->stop)
            pthread_cond_wait(&g->cv_work, &g->mu);
        if (!g->head)
            break;
        asr__gather_wait(&g->gather, &g->cv_work, &g->mu, &g->stop);
        round_arrays(g);
        asr__gpu_job_t *list = g->head;
        g->head = g->tail = NULL;
        pthread_mutex_unlock(&g->mu);
        run_round(g, list);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    free(g->round);
    g->round = NULL;
    g->round_cap = 0;
    if (g->dev) {
        st.fini(g);
        asr_dev_close(g->dev);
        g->dev = NULL;
    }
    return NULL;
}

asr_err_t asr__gpu_batcher_start(struct asr__gpu_model *g,
                                 asr_err_t (*init)(struct asr__gpu_model *),
                                 void (*fini)(struct asr__gpu_model *)) {
    pthread_mutex_init(&g->mu, NULL);
    asr_cond_init(&g->cv_work); /* the gather's timed wait */
    asr__gather_init(&g->gather, GATHER_MAX_S, "ASRD_GPU_GATHER_US");
    pthread_cond_init(&g->cv_done, NULL);
    start_t st = {g, init, fini};
    if (pthread_create(&g->thread, NULL, batcher_main, &st) != 0) {
        snprintf(g->err, sizeof g->err, "cannot start the GPU batcher thread");
        return ASR_ERR_NOMEM;
    }
    g->thread_started = true;
    pthread_mutex_lock(&g->mu);
    while (!g->ready)
        pthread_cond_wait(&g->cv_done, &g->mu);
    asr_err_t rc = g->init_rc;
    pthread_mutex_unlock(&g->mu);
    if (rc != ASR_OK) { /* the thread has cleaned up and returned */
        pthread_join(g->thread, NULL);
        g->thread_started = false;
    }
    return rc;
}

void asr__gpu_batcher_stop(struct asr__gpu_model *g) {
    if (!g->thread_started)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_broadcast(&g->cv_work);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    g->thread_started = false;
}

asr_err_t asr__gpu_submit(struct asr__gpu_model *g, asr__gpu_job_t *j) {
    j->rc = ASR_OK;
    j->done = false;
    j->next = NULL;
    pthread_mutex_lock(&g->mu);
    /* a lost context fails at once (a slot close still goes: the batcher frees the slot) */
    if (g->stop || (atomic_load(&g->lost) && j->kind != ASR_GPU_JOB_SLOT_CLOSE)) {
        pthread_mutex_unlock(&g->mu);
        return ASR_ERR_GPU;
    }
    struct asr__gpu_stream *sg = j->s ? j->s->g : NULL;
    if (sg) /* back from the last pass */
        asr__gather_back(&g->gather, &sg->gather_mark, j->kind == ASR_GPU_JOB_STEP);
    if (g->tail)
        g->tail->next = j;
    else
        g->head = j;
    g->tail = j;
    pthread_cond_signal(&g->cv_work);
    while (!j->done)
        pthread_cond_wait(&g->cv_done, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return j->rc;
}

void asr_model_batch_stats(const asr_model_t *m, asr_batch_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (m && m->cb) /* a CPU model's batcher (cpu_batch.c) */
        asr__cpu_batch_stats(m, out);
    if (!m || !m->g)
        return;
    pthread_mutex_lock(&m->g->mu);
    *out = m->g->stats;
    pthread_mutex_unlock(&m->g->mu);
}
