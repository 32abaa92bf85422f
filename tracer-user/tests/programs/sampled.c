/* For sampling mode (--sample N): 20,000 blocks of 32 bytes kept (an
 * estimate under sampling), 20,000 malloc/free pairs (nothing kept: a
 * sampled block's free must be seen) and 4 pipes left open (descriptors
 * stay exact). */
#include <stdlib.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static void *volatile sink;

NOINLINE void keep_blocks(int n) {
    for (int i = 0; i < n; i++)
        sink = malloc(32);
}

NOINLINE void churn(int n) {
    for (int i = 0; i < n; i++) {
        void *volatile p = malloc(48);
        free(p);
    }
}

NOINLINE void open_pipes(void) {
    int p[2];
    for (int i = 0; i < 4; i++)
        if (pipe(p) != 0)
            exit(1);
}

int main(void) {
    keep_blocks(20000);
    churn(20000);
    open_pipes();
    return 0;
}
