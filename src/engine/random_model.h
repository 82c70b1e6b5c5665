/* engine: random-weight Whisper models of the real shapes (tiny ... large-v3-turbo), for the tests
 * and benchmarks of sizes whose real weights are not at hand. The same shape and seed give the same
 * weights, bit for bit (a counter-based generator seeded per tensor name, integer arithmetic and
 * one multiplication per weight; only the encoder's sinusoid positions come from libm, rounded to
 * float16). */
#ifndef ASR_ENGINE_RANDOM_MODEL_H
#define ASR_ENGINE_RANDOM_MODEL_H

#include <stdint.h>
#include "engine/wsource.h"

typedef struct {
    const char *name;
    int d_model, n_audio_layer, n_text_layer, n_head, n_mels, n_vocab;
} asr_random_shape_t;

/* The shape called `name` ("tiny", "base", "small", "medium", "large-v3", "large-v3-turbo"), or
 * NULL. Static data. */
const asr_random_shape_t *asr_random_shape(const char *name);

/* "tiny|base|small|medium|large-v3|large-v3-turbo" (static), for usage lines. */
const char *asr_random_shape_names(void);

/* A model of shape `shape` with weights drawn from `seed`, in memory as float16 tensors (what
 * every output type is converted from: float32 output holds the same values exactly), with the
 * built-in multilingual tokenizer and the default alignment heads. *out: owned by caller
 * (asr_wsource_close); its src feeds any writer (wwrite.h). ASR_ERR_INVALID (unknown shape),
 * ASR_ERR_NOMEM, or the tokenizer's error; a one-line reason in errbuf.
 *
 * The weights are not a trained model's but keep greedy decoding alive, so that a comparison of
 * decoders sees many varied tokens: N(0, 0.02)-like matrices (conv kernels scaled by their fan-in
 * so the encoder's activations stay O(1)); layer norms gamma ~ 1, beta ~ 0; the key biases zero
 * (Whisper has none: every format carries the model exactly); the encoder's positions the
 * sinusoids Whisper uses; the token embeddings (also the output projection) scaled so logits
 * spread about 3 around their mean, the decoder's positions larger than the token embeddings (each
 * step's hidden state is then not the input token's own embedding, which would predict itself
 * forever); and the rows of <|endoftext|> and every token after it (task, language, timestamp
 * tokens) 50 times smaller, so their logits sit near 0 while the best text token's is near 12:
 * neither an early <|endoftext|> nor the sum of the timestamp tokens' probabilities wins. */
asr_err_t asr_random_model_create(const char *shape, uint64_t seed, asr_wsource_t **out,
                                  char *errbuf, size_t errbuf_len);

#endif
