/* core: embedding a file's bytes in the binary at build time (the VAD weights, the speech clip of
 * "Test connection"). CMake passes the file's absolute path as a string macro, and the assembler's
 * .incbin copies it into .rodata between two local labels, so nothing is generated and no tool
 * beyond the compiler is needed.
 *
 * ASR_EMBED_FILE(sym, path) declares `const unsigned char sym_start[]` and `sym_stop[]` (file
 * scope, one use per symbol name); the bytes are [sym_start, sym_stop), 16-byte aligned. */
#ifndef ASR_CORE_EMBED_H
#define ASR_CORE_EMBED_H

#define ASR_EMBED_FILE(sym, path)                                                                  \
    __asm__(".section .rodata\n"                                                                   \
            ".balign 16\n" #sym "_start:\n"                                                        \
            ".incbin \"" path "\"\n" #sym "_stop:\n"                                               \
            ".previous\n");                                                                        \
    extern const unsigned char sym##_start[] __asm__(#sym "_start");                               \
    extern const unsigned char sym##_stop[] __asm__(#sym "_stop")

#endif
