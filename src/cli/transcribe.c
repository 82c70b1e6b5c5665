/* cli: `asrd transcribe` and `asrd debug` — drive the engine through its public API only
 * (include/asr/engine.h). Exit codes: 0 success, 1 a file failed (one-line reason on stderr),
 * 2 bad usage. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asr/engine.h"
#include "audio/audio.h"
#include "cli/cli.h"
#include "format/format.h"
#include "core/core.h"
#include "svc/svc.h"

typedef struct {
    const char *model;
    const char *language;
    const char *task;
    const char *format;
    const char *prompt;
    const char *compute_type;
    const char *device; /* --device, else $ASRD_DEVICE, else NULL (auto) */
    int max_batch;
    int threads;
    int beam_size;
    int best_of;
    float patience;
    float temperatures[ASR_MAX_TEMPERATURES];
    int n_temperatures;
    int no_condition;
    int word_timestamps;
    int vad;
    int no_silence_guard;
    float vad_threshold;
    int vad_min_silence_ms, vad_speech_pad_ms;
    asr_subtitle_opts_t subs;
    int detect_language;
    asr_zh_script_t chinese_script;
    bool chinese_script_set; /* else the default: simplified, as `asrd serve`'s */
    int timings;
} tx_opts_t;

static void tx_usage(FILE *f) {
    fprintf(
        f,
        "usage: asrd transcribe [--model NAME|DIR] [--language L] [--task transcribe|translate]\n"
        "                       [--format txt|json|verbose_json|srt|vtt] [--threads N]\n"
        "                       [--beam-size N] [--best-of N] [--patience P]\n"
        "                       [--temperature T[,T...]] [--initial-prompt TEXT]\n"
        "                       [--no-condition-on-previous-text] [--word-timestamps]\n"
        "                       [--vad] [--vad-threshold P] [--vad-min-silence-ms MS]\n"
        "                       [--vad-speech-pad-ms MS] [--no-silence-guard]\n"
        "                       [--max-line-width N] [--max-line-count N]\n"
        "                       [--max-words-per-line N] [--highlight-words]\n"
        "                       [--chinese-script auto|simplified|traditional]\n"
        "                       [--compute-type float32|bfloat16|int8|float16|int8_float16|auto]\n"
        "                       [--device cpu|cuda|cuda:N|auto] [--max-batch N] [--timings] "
        "FILE...\n"
        "       asrd transcribe --detect-language [--model NAME|DIR] FILE...\n"
        "\n"
        "  --language L            ISO-639-1 code (zh), English name (chinese) or regional form\n"
        "                          (zh-CN, zh_TW, en-US, pt-BR, zh-Hans, zh-Hant); default: "
        "detect\n"
        "  --detect-language       print the 5 most probable languages of each file's first 30 s\n"
        "                          as 'code probability' lines, most probable first; no "
        "transcript\n"
        "  --chinese-script S      write Chinese transcripts in simplified or traditional\n"
        "                          characters (OpenCC), or auto (as the model writes them);\n"
        "                          default: zh-CN/zh-Hans/zh-SG simplified, zh-TW/zh-HK/zh-MO/\n"
        "                          zh-Hant traditional, otherwise simplified\n"
        "  --max-line-width N      srt/vtt: wrap cue lines at N characters (word timestamps on)\n"
        "  --max-line-count N      srt/vtt: at most N lines per cue; with --max-line-width, lines\n"
        "                          flow across segments\n"
        "  --max-words-per-line N  srt/vtt: at most N words per line (one line per cue unless\n"
        "                          --max-line-count or --max-line-width)\n"
        "  --highlight-words       srt/vtt: one cue per word with the word underlined (<u>)\n"
        "  --timings               after each file, one line on stderr: where the time went\n"
        "                          (model load, slot, scan, encoder, cross K/V, decoding)\n"
        "  --device D              where the model runs: cpu, cuda (device 0), cuda:N, or auto\n"
        "                          (default, or $ASRD_DEVICE): a usable CUDA device, else the "
        "CPU;\n"
        "                          one line on stderr says which and why (docs/GPU.md)\n"
        "  --compute-type T        default auto: float32 on the CPU, float16 on a GPU\n"
        "  --max-batch N           GPU: most windows or streams one batched pass takes\n");
}

/* --timings: one line per file on stderr */
static void print_timings(const asr_stream_t *s, const char *path, double t_load, double t_slot) {
    asr_timings_t t;
    asr_stream_timings(s, &t);
    double other = t.total_s - t.scan_s - t.encode_s - t.cross_kv_s - t.decode_s;
    fprintf(stderr,
            "asrd: timings %s: load %.3f s, slot %.3f s, scan %.3f s, encoder %.3f s (%d passes), "
            "cross K/V %.3f s, decoding %.3f s (%d steps, %.2f ms/step), other %.3f s, "
            "transcription %.3f s\n",
            path, t_load, t_slot, t.scan_s, t.encode_s, t.n_encodes, t.cross_kv_s, t.decode_s,
            t.n_steps, t.n_steps ? 1e3 * t.decode_s / t.n_steps : 0.0, other, t.total_s);
}

/* The options that only store their argument: strings (s), flags (f) and integers in a range (i)
 * with their fields; a VAD tuning implies --vad. */
static const struct {
    int code;
    char type;
    const char *name;
    int lo, hi;
    size_t off;
    bool sets_vad;
} OPTS[] = {
    {'m', 's', "model", 0, 0, offsetof(tx_opts_t, model), false},
    {'l', 's', "language", 0, 0, offsetof(tx_opts_t, language), false},
    {'k', 's', "task", 0, 0, offsetof(tx_opts_t, task), false},
    {'f', 's', "format", 0, 0, offsetof(tx_opts_t, format), false},
    {'p', 's', "initial-prompt", 0, 0, offsetof(tx_opts_t, prompt), false},
    {'c', 's', "compute-type", 0, 0, offsetof(tx_opts_t, compute_type), false},
    {1012, 's', "device", 0, 0, offsetof(tx_opts_t, device), false},
    {1013, 'i', "max-batch", 1, 1024, offsetof(tx_opts_t, max_batch), false},
    {'N', 'f', "no-condition-on-previous-text", 0, 0, offsetof(tx_opts_t, no_condition), false},
    {'W', 'f', "word-timestamps", 0, 0, offsetof(tx_opts_t, word_timestamps), false},
    {'V', 'f', "vad", 0, 0, offsetof(tx_opts_t, vad), false},
    {1004, 'f', "no-silence-guard", 0, 0, offsetof(tx_opts_t, no_silence_guard), false},
    {1009, 'f', "detect-language", 0, 0, offsetof(tx_opts_t, detect_language), false},
    {1011, 'f', "timings", 0, 0, offsetof(tx_opts_t, timings), false},
    {'t', 'i', "threads", 1, 256, offsetof(tx_opts_t, threads), false},
    {'b', 'i', "beam-size", 1, 8, offsetof(tx_opts_t, beam_size), false},
    {'B', 'i', "best-of", 1, 8, offsetof(tx_opts_t, best_of), false},
    {1002, 'i', "vad-min-silence-ms", 0, 60000, offsetof(tx_opts_t, vad_min_silence_ms), true},
    {1003, 'i', "vad-speech-pad-ms", 0, 10000, offsetof(tx_opts_t, vad_speech_pad_ms), true},
    {1005, 'i', "max-line-width", 1, 10000, offsetof(tx_opts_t, subs.max_line_width), false},
    {1006, 'i', "max-line-count", 1, 10000, offsetof(tx_opts_t, subs.max_line_count), false},
    {1007, 'i', "max-words-per-line", 1, 10000, offsetof(tx_opts_t, subs.max_words_per_line),
     false},
};

/* Option c with argument s when it is one of OPTS: 1 (stored in o), -1 when s is not an integer
 * in its range (message printed); 0 when c is another option. */
static int stored_option(tx_opts_t *o, int c, const char *s) {
    for (size_t i = 0; i < sizeof OPTS / sizeof *OPTS; i++) {
        if (OPTS[i].code != c)
            continue;
        void *field = (char *)o + OPTS[i].off;
        if (OPTS[i].type == 's') {
            *(const char **)field = s;
        } else if (OPTS[i].type == 'f') {
            *(int *)field = 1;
        } else {
            char *end;
            long v = strtol(s, &end, 10);
            if (!*s || *end || v < OPTS[i].lo || v > OPTS[i].hi) {
                fprintf(stderr, "asrd: --%s must be an integer from %d to %d\n", OPTS[i].name,
                        OPTS[i].lo, OPTS[i].hi);
                return -1;
            }
            *(int *)field = (int)v;
        }
        if (OPTS[i].sets_vad)
            o->vad = 1;
        return 1;
    }
    return 0;
}

static void progress_cb(double f, void *ud) {
    (void)ud;
    fprintf(stderr, "\r[%3d%%]", (int)(f * 100.0 + 0.5));
    fflush(stderr);
}

static int parse_tx_opts(int argc, char **argv, tx_opts_t *o) {
    static const struct option longs[] = {{"model", required_argument, 0, 'm'},
                                          {"language", required_argument, 0, 'l'},
                                          {"task", required_argument, 0, 'k'},
                                          {"format", required_argument, 0, 'f'},
                                          {"threads", required_argument, 0, 't'},
                                          {"beam-size", required_argument, 0, 'b'},
                                          {"best-of", required_argument, 0, 'B'},
                                          {"patience", required_argument, 0, 'P'},
                                          {"temperature", required_argument, 0, 'T'},
                                          {"initial-prompt", required_argument, 0, 'p'},
                                          {"prompt", required_argument, 0, 'p'},
                                          {"compute-type", required_argument, 0, 'c'},
                                          {"no-condition-on-previous-text", no_argument, 0, 'N'},
                                          {"word-timestamps", no_argument, 0, 'W'},
                                          {"vad", no_argument, 0, 'V'},
                                          {"no-silence-guard", no_argument, 0, 1004},
                                          {"vad-threshold", required_argument, 0, 1001},
                                          {"vad-min-silence-ms", required_argument, 0, 1002},
                                          {"vad-speech-pad-ms", required_argument, 0, 1003},
                                          {"max-line-width", required_argument, 0, 1005},
                                          {"max-line-count", required_argument, 0, 1006},
                                          {"max-words-per-line", required_argument, 0, 1007},
                                          {"highlight-words", no_argument, 0, 1008},
                                          {"detect-language", no_argument, 0, 1009},
                                          {"chinese-script", required_argument, 0, 1010},
                                          {"timings", no_argument, 0, 1011},
                                          {"device", required_argument, 0, 1012},
                                          {"max-batch", required_argument, 0, 1013},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->model = getenv("ASRD_MODEL") ? getenv("ASRD_MODEL") : "base";
    o->task = "transcribe";
    o->format = "txt";
    asr_transcribe_params_t d = asr_transcribe_default_params();
    o->beam_size = d.beam_size;
    o->best_of = d.best_of;
    o->patience = d.patience;
    memcpy(o->temperatures, d.temperatures, sizeof o->temperatures);
    o->n_temperatures = d.n_temperatures;
    o->compute_type = "auto"; /* float32 on the CPU, float16 on a GPU */
    o->device = asr__cli_device_env();
    o->vad_threshold = d.vad.threshold;
    o->vad_min_silence_ms = d.vad.min_silence_ms;
    o->vad_speech_pad_ms = d.vad.speech_pad_ms;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+m:l:f:t:h", longs, NULL)) != -1) {
        int k = stored_option(o, c, optarg);
        if (k < 0)
            return 2;
        if (k > 0)
            continue;
        switch (c) {
        case 'P': {
            char *end;
            o->patience = strtof(optarg, &end);
            if (!*optarg || *end || !(o->patience >= 0.5f && o->patience <= 4.0f)) {
                fprintf(stderr, "asrd: --patience must be a number from 0.5 to 4\n");
                return 2;
            }
            break;
        }
        case 'T': {
            /* one temperature, or a comma-separated fallback schedule */
            o->n_temperatures = 0;
            const char *q = optarg;
            for (;;) {
                char *end;
                float t = strtof(q, &end);
                if (end == q || !(t >= 0.0f && t <= 1.0f) ||
                    o->n_temperatures == ASR_MAX_TEMPERATURES || (*end && *end != ',')) {
                    fprintf(stderr,
                            "asrd: --temperature takes up to %d values from 0 to 1, "
                            "comma-separated\n",
                            ASR_MAX_TEMPERATURES);
                    return 2;
                }
                o->temperatures[o->n_temperatures++] = t;
                if (!*end)
                    break;
                q = end + 1;
            }
            break;
        }
        case 1001: {
            char *end;
            o->vad_threshold = strtof(optarg, &end);
            if (!*optarg || *end || !(o->vad_threshold > 0.0f && o->vad_threshold < 1.0f)) {
                fprintf(stderr, "asrd: --vad-threshold must be a number between 0 and 1\n");
                return 2;
            }
            o->vad = 1;
            break;
        }
        case 1008:
            o->subs.highlight_words = true;
            break;
        case 1010: {
            int z = asr_svc_zh_script_parse(optarg);
            if (z < 0) {
                fprintf(stderr, "asrd: --chinese-script must be auto, simplified or traditional\n");
                return 2;
            }
            o->chinese_script = (asr_zh_script_t)z;
            o->chinese_script_set = true;
            break;
        }
        case 'h':
            tx_usage(stdout);
            exit(0);
        default:
            fprintf(stderr, "asrd: unknown or incomplete option '%s'\n", argv[optind - 1]);
            tx_usage(stderr);
            return 2;
        }
    }
    if (strcmp(o->task, "transcribe") && strcmp(o->task, "translate")) {
        fprintf(stderr, "asrd: --task must be transcribe or translate\n");
        return 2;
    }
    int fmt = asr_format_parse(o->format);
    if (fmt < 0) {
        fprintf(stderr, "asrd: --format must be txt, json, verbose_json, srt or vtt\n");
        return 2;
    }
    if (asr_subtitle_opts_active(&o->subs) && fmt != ASR_FMT_SRT && fmt != ASR_FMT_VTT) {
        fprintf(stderr, "asrd: --max-line-width, --max-line-count, --max-words-per-line and "
                        "--highlight-words need --format srt or vtt\n");
        return 2;
    }
    if (o->language && *o->language && !asr_lang_code_normalize(o->language)) {
        fprintf(stderr,
                "asrd: unknown language '%s' (use an ISO-639-1 code such as zh, an English name "
                "such as chinese, or a regional form such as zh-CN)\n",
                o->language);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "asrd: no input file\n");
        tx_usage(stderr);
        return 2;
    }
    return 0;
}

/* Loads model `name` on dev (NULL: the CPU) with its compute type, threads and batch bound. */
static asr_model_t *load_model(const char *name, const char *compute_type, int threads,
                               const asr_cli_device_t *dev, int max_batch) {
    char *dir = asr_cli_model_dir(name);
    asr_model_params_t mp = asr_model_default_params();
    mp.compute_type = compute_type;
    mp.n_threads = threads;
    mp.device = dev ? dev->name : "cpu";
    mp.max_batch = max_batch;
    char err[512] = "";
    asr_model_t *m = NULL;
    asr_err_t rc = asr_model_load(dir, &mp, &m, err, sizeof err);
    if (rc != ASR_OK) {
        if (rc == ASR_ERR_NOT_FOUND && !strchr(name, '/'))
            fprintf(stderr, "asrd: model '%s' not found in %s (run: asrd pull %s)\n", name, dir,
                    name);
        else
            fprintf(stderr, "asrd: cannot load model %s: %s\n", dir, err);
    }
    free(dir);
    return m;
}

/* --detect-language: the first 30 s of each file, top 5 languages. */
static int detect_files(asr_stream_t *s, int argc, char **argv) {
    int failed = 0;
    float *pcm = asr_xmalloc((size_t)30 * 16000 * sizeof(float));
    for (int i = optind; i < argc; i++) {
        char err[512] = "";
        asr_audio_file_source_t fs;
        size_t n = 0, cap = (size_t)30 * 16000;
        asr_err_t e = asr_audio_file_source_open(&fs, argv[i], err, sizeof err);
        if (e == ASR_OK) {
            for (size_t got = 1; e == ASR_OK && got > 0 && n < cap; n += got) {
                got = 0;
                e = asr_audio_file_source_read(&fs, pcm + n, cap - n, &got);
            }
            if (e != ASR_OK)
                snprintf(err, sizeof err, "%s", fs.errmsg[0] ? fs.errmsg : asr_strerror(e));
            asr_audio_file_source_close(&fs);
        }
        if (e != ASR_OK) {
            fprintf(stderr, "asrd: %s\n", err[0] ? err : asr_strerror(e));
            failed = 1;
            continue;
        }
        asr_lang_prob_t top[5];
        int n_top = 0;
        e = asr_stream_detect_language(s, pcm, n, top, 5, &n_top);
        if (e != ASR_OK) {
            const char *msg = asr_stream_errmsg(s);
            fprintf(stderr, "asrd: %s: %s\n", argv[i], msg[0] ? msg : asr_strerror(e));
            failed = 1;
            continue;
        }
        if (argc - optind > 1)
            printf("==> %s <==\n", argv[i]);
        for (int k = 0; k < n_top; k++)
            printf("%s %.4f\n", top[k].code, top[k].prob);
        fflush(stdout);
    }
    free(pcm);
    return failed;
}

int asr_cli_transcribe(int argc, char **argv) {
    tx_opts_t o;
    int rc = parse_tx_opts(argc, argv, &o);
    if (rc)
        return rc;
    asr_cli_device_t dev;
    if ((rc = asr__cli_device_resolve(o.device, "--device", &dev)) != 0)
        return rc;
    double t_load = asr_now_s();
    asr_model_t *m = load_model(o.model, o.compute_type, o.threads, &dev, o.max_batch);
    if (!m)
        return 1;
    t_load = asr_now_s() - t_load;
    /* which device runs and why: when asked (--device, $ASRD_DEVICE, --timings) or not the CPU */
    if (o.device || o.timings || !asr__cli_device_is_cpu(&dev))
        fprintf(stderr, "asrd: device %s (--device %s: %s)\n", asr_model_device_line(m), dev.asked,
                dev.why);
    asr_transcribe_params_t tp = asr_transcribe_default_params();
    tp.task = strcmp(o.task, "translate") ? ASR_TASK_TRANSCRIBE : ASR_TASK_TRANSLATE;
    asr_svc_error_t ce; /* the server's rule for English-only models, as a usage error */
    if (!o.detect_language &&
        asr_svc_check_model_language(o.model, asr_model_info(m)->multilingual,
                                     tp.task == ASR_TASK_TRANSLATE, o.language, &ce) != ASR_OK) {
        fprintf(stderr, "asrd: %s\n", ce.message);
        asr_model_destroy(m);
        return 2;
    }
    tp.language = o.language;
    tp.chinese_script = asr_svc_chinese_script(o.chinese_script_set, o.chinese_script, o.language,
                                               ASR_ZH_SCRIPT_SIMPLIFIED);
    tp.initial_prompt = o.prompt;
    tp.beam_size = o.beam_size;
    tp.best_of = o.best_of;
    tp.patience = o.patience;
    memcpy(tp.temperatures, o.temperatures, sizeof tp.temperatures);
    tp.n_temperatures = o.n_temperatures;
    tp.condition_on_previous_text = !o.no_condition;
    tp.word_timestamps = o.word_timestamps || asr_subtitle_opts_active(&o.subs);
    tp.vad_filter = o.vad;
    tp.skip_silent_windows = !o.no_silence_guard;
    tp.vad.threshold = o.vad_threshold;
    tp.vad.min_silence_ms = o.vad_min_silence_ms;
    tp.vad.speech_pad_ms = o.vad_speech_pad_ms;
    if (isatty(STDERR_FILENO))
        tp.progress_cb = progress_cb;
    asr_stream_t *s = NULL;
    double t_slot = asr_now_s();
    if (asr_stream_create_slot(m, asr_transcribe_n_seq(&tp), &s) != ASR_OK) {
        fprintf(stderr, "asrd: out of memory creating a decoding stream\n");
        asr_model_destroy(m);
        return 1;
    }
    t_slot = asr_now_s() - t_slot;
    if (o.detect_language) {
        rc = detect_files(s, argc, argv);
        asr_stream_destroy(s);
        asr_model_destroy(m);
        return rc;
    }
    asr_format_t fmt = (asr_format_t)asr_format_parse(o.format);
    int failed = 0;
    asr_buf_t out;
    asr_buf_init(&out);
    for (int i = optind; i < argc; i++) {
        const char *path = argv[i];
        char err[512] = "";
        asr_audio_file_source_t fs;
        asr_err_t e = asr_audio_file_source_open(&fs, path, err, sizeof err);
        if (e != ASR_OK) {
            fprintf(stderr, "asrd: %s\n", err[0] ? err : asr_strerror(e));
            failed = 1;
            continue;
        }
        asr_pcm_source_t src = {asr_audio_file_source_read, asr_audio_file_source_rewind, &fs};
        e = asr_stream_transcribe_source(s, &src, &tp);
        if (e != ASR_OK && fs.errmsg[0]) {
            fprintf(stderr, "asrd: %s\n", fs.errmsg);
            asr_audio_file_source_close(&fs);
            failed = 1;
            continue;
        }
        asr_audio_file_source_close(&fs);
        if (tp.progress_cb)
            fprintf(stderr, "\r       \r");
        if (e != ASR_OK) {
            const char *msg = asr_stream_errmsg(s);
            fprintf(stderr, "asrd: %s: %s\n", path, msg[0] ? msg : asr_strerror(e));
            failed = 1;
            continue;
        }
        out.len = 0;
        asr_transcript_t t;
        asr_transcript_from_stream(&t, s);
        asr_transcript_write(&t, fmt, o.task, &o.subs, &out);
        asr_transcript_deinit(&t);
        fwrite(out.data, 1, out.len, stdout);
        fflush(stdout);
        if (o.timings)
            print_timings(s, path, t_load, t_slot);
        t_load = t_slot = 0.0; /* once per process */
    }
    asr_buf_free(&out);
    asr_stream_destroy(s);
    asr_model_destroy(m);
    return failed;
}

static int write_f32(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof(float), n, f) != n) {
        if (f)
            fclose(f);
        fprintf(stderr, "asrd: cannot write %s\n", path);
        return 1;
    }
    return fclose(f) ? 1 : 0;
}

/* asrd debug mel|encode --model M FILE OUT.f32 */
int asr_cli_debug(int argc, char **argv) {
    if (argc < 2 ||
        (strcmp(argv[1], "mel") && strcmp(argv[1], "encode") && strcmp(argv[1], "weights"))) {
        fprintf(stderr, "usage: asrd debug mel|encode --model NAME|DIR FILE OUT.f32\n"
                        "       asrd debug weights --model NAME|DIR [--compute-type CT]\n");
        return 2;
    }
    const char *what = argv[1];
    if (!strcmp(what, "weights")) { /* bytes of weights the loader holds */
        if ((argc != 4 && argc != 6) || strcmp(argv[2], "--model") ||
            (argc == 6 && strcmp(argv[4], "--compute-type"))) {
            fprintf(stderr, "usage: asrd debug weights --model NAME|DIR [--compute-type CT]\n");
            return 2;
        }
        asr_model_t *wm = load_model(argv[3], argc == 6 ? argv[5] : "float32", 0, NULL, 0);
        if (!wm)
            return 1;
        printf("%zu\n", asr_model_weight_bytes(wm));
        asr_model_destroy(wm);
        return 0;
    }
    tx_opts_t o;
    int rc = parse_tx_opts(argc - 1, argv + 1, &o);
    if (rc)
        return rc;
    if (argc - 1 - optind != 2) {
        fprintf(stderr, "usage: asrd debug %s --model NAME|DIR FILE OUT.f32\n", what);
        return 2;
    }
    const char *in = argv[1 + optind], *outp = argv[2 + optind];
    asr_cli_device_t dev;
    if ((rc = asr__cli_device_resolve(o.device ? o.device : "cpu", "--device", &dev)) != 0)
        return rc;
    asr_model_t *m = load_model(o.model, o.compute_type, o.threads, &dev, o.max_batch);
    if (!m)
        return 1;
    float *pcm = NULL, *mel = NULL;
    size_t n = 0;
    int n_frames = 0;
    char err[512] = "";
    rc = 1;
    if (asr_audio_load(in, &pcm, &n, err, sizeof err) != ASR_OK) {
        fprintf(stderr, "asrd: %s\n", err);
        goto done;
    }
    if (asr_engine_log_mel(m, pcm, n, &mel, &n_frames) != ASR_OK) {
        fprintf(stderr, "asrd: log-mel failed\n");
        goto done;
    }
    const asr_model_info_t *info = asr_model_info(m);
    if (!strcmp(what, "mel")) {
        rc = write_f32(outp, mel, (size_t)info->n_mels * n_frames);
        printf("%d\n", n_frames);
    } else {
        int size = n_frames - 1 < 3000 ? n_frames - 1 : 3000;
        float *win = asr_xcalloc((size_t)info->n_mels * 3000, sizeof(float));
        for (int c = 0; c < info->n_mels; c++)
            memcpy(win + (size_t)c * 3000, mel + (size_t)c * n_frames,
                   (size_t)size * sizeof(float));
        asr_stream_t *s = NULL;
        const float *enc = NULL;
        if (asr_stream_create(m, &s) == ASR_OK && asr_stream_encode(s, win, &enc) == ASR_OK)
            rc = write_f32(outp, enc, (size_t)1500 * info->d_model);
        asr_stream_destroy(s);
        free(win);
    }
done:
    free(pcm);
    free(mel);
    asr_model_destroy(m);
    return rc;
}
