/* fuzz_image.c - image files (src/data/image_decode.c): PNG through libpng,
 * JPEG / BMP / PGM / PPM through stb_image, the size checks before both. The
 * first byte picks the channels asked for (as the file has, gray, RGB); the
 * whole input is the file. */
#include "data/image_decode.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int channels[3] = {0, 1, 3};
    const int want = size ? channels[data[0] % 3] : 0;
    int w, h, c;
    const dfn_status info = dfn_image_info("x", data, size, &w, &h, &c);
    dfn_image8 img;
    if (dfn_image_decode(&img, "x", data, size, want) == DFN_OK) {
        FUZZ_ASSERT(info == DFN_OK && img.width == w && img.height == h, "the header's size is the image's");
        FUZZ_ASSERT(img.channels == (want ? want : c), "channels %d", img.channels);
        FUZZ_ASSERT((size_t)w * h * (c == 3 ? 3 : 1) <= 1100 * size + 65536, "%d x %d from %zu bytes", w, h, size);
        unsigned sum = 0; /* every pixel readable */
        for (size_t i = 0; i < (size_t)w * h * img.channels; i++) sum += img.pixels[i];
        (void)sum;
        free(img.pixels);
    } else {
        FUZZ_ASSERT(!img.pixels && dfn_last_error()[0] == 'x', "a message naming the file: %s", dfn_last_error());
    }
    return 0;
}
