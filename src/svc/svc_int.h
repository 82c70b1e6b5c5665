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
    asr_zh_script_t chinese_script; /* the server's default (config chinese_script) */
    char **alias_names;             /* [n_aliases] */
    int *alias_targets;             /* scheduler index of each alias */
    int n_aliases;
};

#endif
