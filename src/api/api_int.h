/* api: private declarations shared by api.c and api_audio.c. */
#ifndef ASR_API_INT_H
#define ASR_API_INT_H

#include <time.h>

#include "api/api.h"
#include "store/store.h"

struct asr_api {
    const asr_config_t *cfg;
    asr_sched_t *sched;
    asr_store_t *store; /* borrowed; set before the server starts serving */
    asr_http_server_t *srv;
    char *upload_dir;
    char **alias_names;
    int *alias_targets; /* sched model index of each alias */
    int n_aliases;
    time_t created; /* "created" of /v1/models entries: when the models were loaded */
};

/* Resolves a model id or alias to a scheduler model index; -1 when unknown. */
int asr__api_resolve_model(const asr_api_t *api, const char *name);
/* POST /v1/audio/transcriptions and /v1/audio/translations. */
void asr__api_transcriptions(asr_http_req_t *req, void *user_data);
void asr__api_translations(asr_http_req_t *req, void *user_data);

#endif
