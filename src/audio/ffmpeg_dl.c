/* audio: dlopen of FFmpeg's libraries by their sonames (the major versions of the headers asrd
 * was built with), once per process. */
#define ASR_FF_NO_REDIRECT
#include "audio/ffmpeg_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include <libavcodec/version.h>
#include <libavformat/version.h>
#include <libavutil/macros.h>
#include <libavutil/version.h>
#include <libswresample/version.h>

asr_ff_api_t asr_ff;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_err[256]; /* empty: loaded */

static void *open_lib(const char *soname) {
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(g_err, sizeof g_err,
                 "FFmpeg is not available (%s); only 16 kHz mono 16-bit WAV can be read",
                 why ? why : soname);
    }
    return h;
}

static void load_all(void) {
    void *avutil = open_lib("libavutil.so." AV_STRINGIFY(LIBAVUTIL_VERSION_MAJOR));
    void *swresample =
        avutil ? open_lib("libswresample.so." AV_STRINGIFY(LIBSWRESAMPLE_VERSION_MAJOR)) : NULL;
    void *avcodec =
        swresample ? open_lib("libavcodec.so." AV_STRINGIFY(LIBAVCODEC_VERSION_MAJOR)) : NULL;
    void *avformat =
        avcodec ? open_lib("libavformat.so." AV_STRINGIFY(LIBAVFORMAT_VERSION_MAJOR)) : NULL;
    if (!avformat)
        return;
#define ASR_FF_SYM(lib, fn)                                                                        \
    if (!g_err[0] && !(*(void **)&asr_ff.fn = dlsym(lib, #fn)))                                    \
        snprintf(g_err, sizeof g_err, "FFmpeg's lib" #lib " lacks " #fn);
    ASR_FF_FUNCS(ASR_FF_SYM)
#undef ASR_FF_SYM
    if (!g_err[0])
        asr_ff.av_log_set_level(AV_LOG_QUIET); /* callers print only our one-line reasons */
}

int asr_ff_load(char *err, size_t err_len) {
    pthread_once(&g_once, load_all);
    if (!g_err[0])
        return 0;
    if (err && err_len)
        snprintf(err, err_len, "%s", g_err);
    return -1;
}
