/* svc: private declarations shared by svc.c and svc_opts.c. */
#ifndef ASR_SVC_INT_H
#define ASR_SVC_INT_H

#include "core/core.h"
#include "svc/svc.h"

struct asr_svc {
    asr_sched_t *sched;
    int beam_size;
    bool vad;
    int max_audio_seconds;
    char **alias_names; /* [n_aliases] */
    int *alias_targets; /* scheduler index of each alias */
    int n_aliases;
};

#endif
