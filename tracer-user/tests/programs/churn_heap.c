/* N malloc/free pairs, nothing left: the report must be empty and complete. */
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    for (long i = 0; i < n; i++) {
        void *volatile p = malloc(64 + (i & 255));
        free(p);
    }
    return 0;
}
