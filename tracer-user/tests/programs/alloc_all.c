/* Through each allocator entry point named on the command line: three calls
 * from one line, the third block freed, two left outstanding. Expected sites
 * are the `@site` markers (name = the function). Name only functions the
 * allocator in use exports: a block from another allocator cannot be freed. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
static void *volatile sink;

#define THREE(expr)                                                                                                    \
    do {                                                                                                               \
        void *volatile p[3];                                                                                                  \
        for (int i = 0; i < 3; i++)                                                                                    \
            p[i] = expr;                                                                                               \
        sink = p[0];                                                                                                   \
        sink = p[1];                                                                                                   \
        free(p[2]);                                                                                                    \
    } while (0)

NOINLINE void leak_malloc(void) { THREE(malloc(11)); } /* @site leak_malloc heap 2 11 */
NOINLINE void leak_calloc(void) { THREE(calloc(3, 6)); } /* @site leak_calloc heap 2 18 */
NOINLINE void leak_realloc(void) { THREE(realloc(NULL, 19)); } /* @site leak_realloc heap 2 19 */
NOINLINE void leak_reallocarray(void) { THREE(reallocarray(NULL, 3, 7)); } /* @site leak_reallocarray heap 2 21 */
NOINLINE void leak_posix_memalign(void) { THREE(({ void *q = NULL; posix_memalign(&q, 64, 13) ? NULL : q; })); } /* @site leak_posix_memalign heap 2 13 */
NOINLINE void leak_aligned_alloc(void) { THREE(aligned_alloc(64, 128)); } /* @site leak_aligned_alloc heap 2 128 */
NOINLINE void leak_memalign(void) { THREE(memalign(64, 15)); } /* @site leak_memalign heap 2 15 */
NOINLINE void leak_valloc(void) { THREE(valloc(16)); } /* @site leak_valloc heap 2 16 */
NOINLINE void leak_pvalloc(void) { THREE(pvalloc(17)); } /* @site leak_pvalloc heap 2 17 */

static const struct {
    const char *name;
    void (*leak)(void);
} entries[] = {
    {"malloc", leak_malloc},   {"calloc", leak_calloc},     {"realloc", leak_realloc},
    {"reallocarray", leak_reallocarray}, {"posix_memalign", leak_posix_memalign},
    {"aligned_alloc", leak_aligned_alloc}, {"memalign", leak_memalign}, {"valloc", leak_valloc},
    {"pvalloc", leak_pvalloc},
};

int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++)
        for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
            if (strcmp(argv[a], entries[i].name) == 0)
                entries[i].leak();
    return 0;
}
