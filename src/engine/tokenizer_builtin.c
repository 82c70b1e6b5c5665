/* tokenizer_builtin: the multilingual Whisper tokenizer built into the binary, so that a model
 * without tokenizer files (`asrd debug random-model`, tests on a machine with no model) still has
 * the real vocabulary and merges. The data is openai/whisper's multilingual.tiktoken (MIT,
 * assets/tokenizer/, embedded by CMake through ASR_TOKENIZER_TIKTOKEN_FILE); it is parsed and its
 * merges derived at each call (tokenizer_ggml.c), ~100 ms, so callers keep the result. */
#include "core/embed.h"
#include "engine/tokenizer_int.h"

ASR_EMBED_FILE(asr__multilingual_tiktoken, ASR_TOKENIZER_TIKTOKEN_FILE);

asr_err_t asr_tokenizer_builtin(int n_vocab, asr_tokenizer_t **out, char *errbuf,
                                size_t errbuf_len) {
    if (out)
        *out = NULL;
    if (!out)
        return ASR_ERR_INVALID;
    if (n_vocab != 51865 && n_vocab != 51866) {
        asr_errf(errbuf, errbuf_len,
                 "the built-in tokenizer is multilingual (51865 or 51866 tokens), not %d tokens",
                 n_vocab);
        return ASR_ERR_INVALID;
    }
    const char *text = (const char *)asr__multilingual_tiktoken_start;
    size_t len = (size_t)(asr__multilingual_tiktoken_stop - asr__multilingual_tiktoken_start);
    return asr_tokenizer_load_tiktoken(text, len, n_vocab, out, errbuf, errbuf_len);
}
