/* engine: the GPU model's batcher thread. It is the only thread that calls the device: it opens
 * it, uploads the weights (the init function gpu_model.c gives it), then serves the jobs streams
 * submit (asr__gpu_submit: enqueue, wait on a condition variable; no polling, no sleeps). Each
 * round takes every pending job: the decoder steps of all streams, and the prompt blocks of
 * streams starting a window, run as one batched decoder pass (up to max_batch streams and
 * max_rows rows), the encoder windows as one batched pass (up to max_batch windows), the other
 * jobs one by one; each group's jobs are marked done as soon as the group is finished.
 *
 * Invariants: a stream has at most one job in flight (it waits for it), so jobs of one stream
 * never reorder; a stream's pending cache copies are queued before any of its jobs runs; once the
 * device reports a failure (sticky), every later job fails with ASR_ERR_GPU. */
#include <string.h>

#include "engine/gpu_int.h"

asr_err_t asr__gpu_check(struct asr__gpu_model *g) {
    char why[256];
    asr_err_t rc = asr_dev_error(g->dev, why, sizeof why);
    if (rc != ASR_OK && !g->err[0]) {
        pthread_mutex_lock(&g->mu);
        snprintf(g->err, sizeof g->err, "%s", why);
        pthread_mutex_unlock(&g->mu);
        ASR_LOG(ASR_LOG_ERROR, "msg=gpu_failed device=%s reason=\"%s\"", g->m->device, why);
    }
    return rc;
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
        for (int i = 0; i < k; i++)
            asr__gpu_apply_copies(g, jobs[i0 + i]->s);
        if (asr_dev_error(g->dev, NULL, 0) == ASR_OK) {
            if (dec)
                asr__gpu_run_decode(g, jobs + i0, k);
            else
                asr__gpu_run_encode(g, jobs + i0, k);
        }
        pthread_mutex_lock(&g->mu);
        asr_batch_stats_t *st = &g->stats;
        if (dec) {
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
    int n = 0;
    for (asr__gpu_job_t *j = list; j; j = j->next)
        n++;
    asr__gpu_job_t **decs = asr_xmalloc((size_t)n * 3 * sizeof *decs), **encs = decs + n;
    asr__gpu_job_t **singles = encs + n;
    int n_decs = 0, n_encs = 0, n_singles = 0;
    for (asr__gpu_job_t *j = list; j; j = j->next)
        if (j->kind == ASR_GPU_JOB_STEP || (j->kind == ASR_GPU_JOB_FORWARD && !j->s->align_capture))
            decs[n_decs++] = j;
        else if (j->kind == ASR_GPU_JOB_ENCODE)
            encs[n_encs++] = j;
        else
            singles[n_singles++] = j;
    if (n_decs)
        run_batched(g, decs, n_decs, true);
    for (int i = 0; i < n_singles; i++)
        run_single(g, singles[i]);
    if (n_encs)
        run_batched(g, encs, n_encs, false);
    free(decs);
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
        asr__gpu_job_t *list = g->head;
        g->head = g->tail = NULL;
        pthread_mutex_unlock(&g->mu);
        run_round(g, list);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
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
    pthread_cond_init(&g->cv_work, NULL);
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
    if (g->stop) {
        pthread_mutex_unlock(&g->mu);
        return ASR_ERR_GPU;
    }
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
    if (!m || !m->g)
        return;
    pthread_mutex_lock(&m->g->mu);
    *out = m->g->stats;
    pthread_mutex_unlock(&m->g->mu);
}
