/* config: the settings of `asrd serve`, declared once in a table (config.c) from which everything
 * else derives: defaults, the config file parser (`key = value` lines), the ASRD_* environment
 * variables, command-line flags (`--key-name VALUE`), validation, `--help`, `GET /v1/config` and
 * the checked-in asrd.conf.example.
 *
 * Precedence, lowest first: table default, config file, environment, flags. Unknown keys (file) and
 * unknown flags are errors. Values are validated when set, so a config that loaded is valid.
 *
 * Thread-safety: an asr_config_t is filled at startup by one thread and read-only afterwards. */
#ifndef ASR_CONFIG_H
#define ASR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

typedef enum {
    ASR_CFG_STR,  /* free text (non-empty) */
    ASR_CFG_INT,  /* integer within [min, max] */
    ASR_CFG_SIZE, /* byte count with optional K/M/G suffix (binary: 1K = 1024), within [min, max] */
    ASR_CFG_BOOL, /* true/false, yes/no, on/off, 1/0 */
    ASR_CFG_LIST, /* comma-separated items, stored normalised ("a,b"); may be empty */
    ASR_CFG_ENUM  /* one of `choices` ("a|b|c") */
} asr_cfg_type_t;

/* One setting. Strings are static. */
typedef struct {
    const char *name; /* key in files and /v1/config; the flag is --name with '_' -> '-' */
    asr_cfg_type_t type;
    const char *def;     /* default, written as in a config file */
    int64_t min, max;    /* INT and SIZE only, inclusive */
    const char *choices; /* ENUM only: "error|warn|info" */
    const char *env;     /* environment variable */
    size_t offset;       /* of the field in asr_config_t */
    bool reloadable;     /* may change without a restart (reload itself is not implemented yet) */
    bool secret;         /* never shown by /v1/config or --print-config */
    const char *help;    /* one line */
} asr_cfg_setting_t;

/* Parsed settings. Strings are owned by the struct (asr_config_deinit frees them). */
typedef struct {
    char *host;
    int port;
    char *data;
    char *database; /* secret: a URL may hold a password */
    char *models_dir;
    char *models;        /* LIST */
    char *model_aliases; /* LIST of ALIAS=MODEL or ALIAS */
    int64_t max_upload;
    int max_audio_seconds;
    char *api_keys;     /* LIST, secret */
    char *admin_keys;   /* LIST, secret: keys of the admin role */
    char *cors_origins; /* LIST */
    int max_parallel;
    int max_queue;
    int max_wait;
    int64_t memory_limit;
    int64_t memory_reserve;
    int keep_alive;
    bool preload;
    char *fallback;             /* LIST of chains a>b>c */
    char *compute_type;         /* ENUM */
    char *device;               /* cpu|cuda|cuda:N|auto (host: tests) */
    int max_batch;              /* GPU batch bound; 0 = engine default */
    int64_t gpu_memory_limit;   /* device bytes asrd may hold; 0 = what is free */
    int64_t gpu_memory_reserve; /* device bytes left to other processes */
    char *gpu_fallback;         /* ENUM: none|cpu */
    bool debug_faults;
    int max_connections;
    int threads;
    int beam_size;
    bool vad;
    char *chinese_script; /* ENUM: auto|simplified|traditional (asr_svc_zh_script_parse) */
    int idle_timeout;
    int upload_timeout;
    int stall_timeout;
    int shutdown_deadline;
    char *recordings_dir;
    int64_t max_recording;
    int job_workers;
    int lease_seconds;
    int job_max_attempts;
    int job_backoff_ms;
    int job_retry_max_delay; /* s */
    char *node_id;
    char *node_url;
    int heartbeat_seconds;
    int health_interval;   /* s; 0 = off */
    int breaker_threshold; /* consecutive failures */
    int breaker_cooldown;  /* s */
    char *log_level;       /* ENUM */
    char *log_format;      /* ENUM: text|json */
    int retention_days;    /* 0 = keep forever */
    bool retention_keep_transcripts;
} asr_config_t;

/* The table and its length. Static, thread-safe. */
const asr_cfg_setting_t *asr_config_table(int *n);
/* Looks a setting up by name ('-' and '_' are equivalent). NULL if unknown. */
const asr_cfg_setting_t *asr_config_find(const char *name);

/* Fills `cfg` with the table defaults. */
void asr_config_init(asr_config_t *cfg);
/* Frees the strings of `cfg`. NULL-safe. */
void asr_config_deinit(asr_config_t *cfg);

/* Validates `value` for setting `name` and stores it. Returns ASR_ERR_NOT_FOUND for an unknown
 * name, ASR_ERR_INVALID for a bad value; errbuf gets a one-line reason. */
asr_err_t asr_config_set(asr_config_t *cfg, const char *name, const char *value, char *errbuf,
                         size_t errbuf_len);
/* Parses config file text (`key = value` lines, '#' comments, optional double quotes around the
 * value). `source` names the text in error messages ("asrd.conf:12: ..."). Duplicate keys and
 * unknown keys are errors. `text` is borrowed and need not be NUL-terminated. */
asr_err_t asr_config_parse_text(asr_config_t *cfg, const char *text, size_t len, const char *source,
                                char *errbuf, size_t errbuf_len);
asr_err_t asr_config_load_file(asr_config_t *cfg, const char *path, char *errbuf,
                               size_t errbuf_len);
/* Applies every set, non-empty ASRD_* variable of the table. */
asr_err_t asr_config_load_env(asr_config_t *cfg, char *errbuf, size_t errbuf_len);

/* Command-line actions besides settings. */
typedef enum {
    ASR_CFG_ACTION_RUN = 0,
    ASR_CFG_ACTION_HELP,          /* --help */
    ASR_CFG_ACTION_PRINT,         /* --print-config: effective settings, then exit */
    ASR_CFG_ACTION_PRINT_EXAMPLE, /* --print-config-example: asrd.conf.example */
} asr_cfg_action_t;

/* Returns the value of `--config FILE` / `--config=FILE` in argv (borrowed), else NULL. */
const char *asr_config_file_arg(int argc, char **argv);
/* Applies flags argv[1..argc-1]: `--name VALUE`, `--name=VALUE`, and for booleans `--name`,
 * `--no-name`. `--config FILE` is skipped (see asr_config_file_arg). */
asr_err_t asr_config_parse_args(asr_config_t *cfg, int argc, char **argv, asr_cfg_action_t *action,
                                char *errbuf, size_t errbuf_len);

/* Appends the generated `--help` text (usage line `usage`, then one entry per setting). */
void asr_config_write_help(asr_buf_t *out, const char *usage);
/* Appends the example config file: every setting, commented out at its default. */
void asr_config_write_example(asr_buf_t *out);
/* Appends the effective settings as `key = value` lines (secrets as <redacted>). */
void asr_config_write_effective(const asr_config_t *cfg, asr_buf_t *out);
/* Appends a JSON object of the non-secret settings (typed: numbers, booleans, arrays for lists). */
void asr_config_write_json(const asr_config_t *cfg, asr_buf_t *out);

/* Splits a LIST value into items. *out_items is owned by the caller (asr_config_list_free). */
void asr_config_list_split(const char *list, char ***out_items, int *out_n);
void asr_config_list_free(char **items, int n);

/* Parses a SIZE value ("25MiB", "512k", "1048576"). Returns ASR_ERR_INVALID on bad syntax or
 * overflow. */
asr_err_t asr_config_parse_size(const char *s, int64_t *out);

#endif
