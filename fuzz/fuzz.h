/* fuzz.h - what the fuzzing harnesses share (fuzz/README.md).
 *
 * Each fuzz_<target>.c defines LLVMFuzzerTestOneInput(data, size), the entry
 * point of libFuzzer (clang -fsanitize=fuzzer, with ASan and UBSan: `make
 * fuzz`), and of replay.c, which feeds it files (the committed seed corpora
 * and every crasher ever found, in `make test`). A harness hands the bytes to
 * one parser, the way the program would meet them: most parsers read a path,
 * so the bytes go to a file first, in a private temporary folder. A parser
 * may refuse the bytes (with a message) but must not crash, leak, read out of
 * bounds or allocate more than the bytes justify; a harness may check more
 * (what parses, prints back to the same thing). */
#ifndef DFN_FUZZ_H
#define DFN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A path in this process's temporary folder (made on first use, removed at
 * exit) holding exactly the given bytes. */
const char *fuzz_file(const char *name, const uint8_t *data, size_t size);
/* The folder itself. */
const char *fuzz_dir(void);

/* A harness's own check: prints and aborts, which libFuzzer reports as a crash. */
#define FUZZ_ASSERT(cond, ...)                                             \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz check failed: %s: ", #cond);             \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            abort();                                                       \
        }                                                                  \
    } while (0)

#endif
