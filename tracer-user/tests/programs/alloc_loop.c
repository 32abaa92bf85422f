/* Allocates and frees in a loop for ever, and keeps one block in a thousand
 * (from leak_one). Says "ready" on stdout once it loops. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile keep;

__attribute__((noinline)) void leak_one(void) { keep = malloc(40); } /* @site leak_one heap */

int main(void) {
    puts("ready");
    fflush(stdout);
    for (long i = 0;; i++) {
        void *volatile p = malloc(100);
        free(p);
        if (i % 1000 == 0)
            leak_one();
        if (i % 100 == 0)
            usleep(100);
    }
}
