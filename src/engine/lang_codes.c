/* lang_codes: Whisper's language table (codes in language-token order, openai's English names and
 * aliases) and the normalization of what clients send as a language: a code, a name, an alias or
 * a BCP-47-style tag with subtags ("zh-TW", "en_US"). The tokenizer maps the codes to its tokens
 * (tokenizer.c); transcription and the API validate and normalize languages through these.
 *
 * Invariants: the table is static and immutable (so every call is thread-safe); index i of the
 * table is language token lang_begin + i on multilingual models; returned strings are the
 * table's own, never copies. */
#include <string.h>
#include <strings.h>

#include "asr/engine.h"
#include "engine/tokenizer_int.h"

/* Whisper's language codes in token order, with openai's LANGUAGES names. */
static const char *const LANGS[ASR_TOKENIZER_MAX_LANGUAGES][2] = {
    {"en", "english"},        {"zh", "chinese"},     {"de", "german"},        {"es", "spanish"},
    {"ru", "russian"},        {"ko", "korean"},      {"fr", "french"},        {"ja", "japanese"},
    {"pt", "portuguese"},     {"tr", "turkish"},     {"pl", "polish"},        {"ca", "catalan"},
    {"nl", "dutch"},          {"ar", "arabic"},      {"sv", "swedish"},       {"it", "italian"},
    {"id", "indonesian"},     {"hi", "hindi"},       {"fi", "finnish"},       {"vi", "vietnamese"},
    {"he", "hebrew"},         {"uk", "ukrainian"},   {"el", "greek"},         {"ms", "malay"},
    {"cs", "czech"},          {"ro", "romanian"},    {"da", "danish"},        {"hu", "hungarian"},
    {"ta", "tamil"},          {"no", "norwegian"},   {"th", "thai"},          {"ur", "urdu"},
    {"hr", "croatian"},       {"bg", "bulgarian"},   {"lt", "lithuanian"},    {"la", "latin"},
    {"mi", "maori"},          {"ml", "malayalam"},   {"cy", "welsh"},         {"sk", "slovak"},
    {"te", "telugu"},         {"fa", "persian"},     {"lv", "latvian"},       {"bn", "bengali"},
    {"sr", "serbian"},        {"az", "azerbaijani"}, {"sl", "slovenian"},     {"kn", "kannada"},
    {"et", "estonian"},       {"mk", "macedonian"},  {"br", "breton"},        {"eu", "basque"},
    {"is", "icelandic"},      {"hy", "armenian"},    {"ne", "nepali"},        {"mn", "mongolian"},
    {"bs", "bosnian"},        {"kk", "kazakh"},      {"sq", "albanian"},      {"sw", "swahili"},
    {"gl", "galician"},       {"mr", "marathi"},     {"pa", "punjabi"},       {"si", "sinhala"},
    {"km", "khmer"},          {"sn", "shona"},       {"yo", "yoruba"},        {"so", "somali"},
    {"af", "afrikaans"},      {"oc", "occitan"},     {"ka", "georgian"},      {"be", "belarusian"},
    {"tg", "tajik"},          {"sd", "sindhi"},      {"gu", "gujarati"},      {"am", "amharic"},
    {"yi", "yiddish"},        {"lo", "lao"},         {"uz", "uzbek"},         {"fo", "faroese"},
    {"ht", "haitian creole"}, {"ps", "pashto"},      {"tk", "turkmen"},       {"nn", "nynorsk"},
    {"mt", "maltese"},        {"sa", "sanskrit"},    {"lb", "luxembourgish"}, {"my", "myanmar"},
    {"bo", "tibetan"},        {"tl", "tagalog"},     {"mg", "malagasy"},      {"as", "assamese"},
    {"tt", "tatar"},          {"haw", "hawaiian"},   {"ln", "lingala"},       {"ha", "hausa"},
    {"ba", "bashkir"},        {"jw", "javanese"},    {"su", "sundanese"},     {"yue", "cantonese"},
};

int asr__lang_index(const char *code) {
    if (!code)
        return -1;
    for (int i = 0; i < ASR_TOKENIZER_MAX_LANGUAGES; i++)
        if (!strcmp(LANGS[i][0], code))
            return i;
    return -1;
}

const char *asr_lang_name(const char *code) {
    int i = asr__lang_index(code);
    return i < 0 ? NULL : LANGS[i][1];
}

/* Other names openai accepts (TO_LANGUAGE_CODE). */
static const char *const LANG_ALIASES[][2] = {
    {"burmese", "my"},       {"valencian", "ca"}, {"flemish", "nl"},   {"haitian", "ht"},
    {"letzeburgesch", "lb"}, {"pushto", "ps"},    {"panjabi", "pa"},   {"moldavian", "ro"},
    {"moldovan", "ro"},      {"sinhalese", "si"}, {"castilian", "es"}, {"mandarin", "zh"},
};

/* A code, an English name or an alias, without subtags. */
static const char *lang_lookup(const char *s) {
    for (int i = 0; i < ASR_TOKENIZER_MAX_LANGUAGES; i++)
        if (!strcasecmp(LANGS[i][0], s) || !strcasecmp(LANGS[i][1], s))
            return LANGS[i][0];
    for (size_t i = 0; i < sizeof LANG_ALIASES / sizeof *LANG_ALIASES; i++)
        if (!strcasecmp(LANG_ALIASES[i][0], s))
            return LANGS[asr__lang_index(LANG_ALIASES[i][1])][0];
    return NULL;
}

static int is_sep(char c) { return c == '-' || c == '_'; }

/* Checks the subtags after the primary one ("CN", "Hant-TW": 2-8 letters or digits each) and
 * returns the primary subtag's code, or NULL. */
static const char *tag_primary(const char *s, char *primary, size_t cap) {
    size_t n = 0;
    while (s[n] && !is_sep(s[n]))
        n++;
    if (n == 0 || n >= cap)
        return NULL;
    memcpy(primary, s, n);
    primary[n] = 0;
    if (!s[n])
        return lang_lookup(primary);
    for (const char *p = s + n; *p;) {
        if (!is_sep(*p))
            return NULL;
        size_t k = 0;
        p++;
        while (p[k] && !is_sep(p[k]) &&
               ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                (p[k] >= '0' && p[k] <= '9')))
            k++;
        if (k < 2 || k > 8 || (p[k] && !is_sep(p[k])))
            return NULL;
        p += k;
    }
    if (n > 3) /* names take no subtags: "chinese-CN" is not a tag */
        return NULL;
    int i = asr__lang_index(lang_lookup(primary));
    return i >= 0 && !strcasecmp(LANGS[i][0], primary) ? LANGS[i][0] : NULL;
}

const char *asr_lang_code_normalize(const char *s) {
    char primary[32];
    return s ? tag_primary(s, primary, sizeof primary) : NULL;
}

asr_zh_script_t asr_lang_zh_script(const char *tag) {
    static const char *const simp_regions[] = {"cn", "sg", "my"};
    static const char *const trad_regions[] = {"tw", "hk", "mo"};
    const char *code = asr_lang_code_normalize(tag);
    if (!code || (strcmp(code, "zh") && strcmp(code, "yue")))
        return ASR_ZH_SCRIPT_AUTO;
    asr_zh_script_t region = ASR_ZH_SCRIPT_AUTO;
    for (const char *p = strpbrk(tag, "-_"); p; p = strpbrk(p + 1, "-_")) {
        char sub[9]; /* normalize() checked: 2-8 characters */
        size_t k = strcspn(p + 1, "-_");
        memcpy(sub, p + 1, k);
        sub[k] = 0;
        if (!strcasecmp(sub, "hans")) /* a script subtag decides */
            return ASR_ZH_SCRIPT_SIMPLIFIED;
        if (!strcasecmp(sub, "hant"))
            return ASR_ZH_SCRIPT_TRADITIONAL;
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(sub, simp_regions[i]))
                region = ASR_ZH_SCRIPT_SIMPLIFIED;
            if (!strcasecmp(sub, trad_regions[i]))
                region = ASR_ZH_SCRIPT_TRADITIONAL;
        }
    }
    return region;
}

const char *asr__lang_code_at(int i) {
    return i >= 0 && i < ASR_TOKENIZER_MAX_LANGUAGES ? LANGS[i][0] : NULL;
}
