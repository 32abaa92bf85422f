/* A stand-in for a JIT runtime: anonymous executable memory, and (given a
 * path) a jitdump file mapped executable the way V8 maps it so profilers
 * find it. Prints the code's address, then waits for the end of stdin. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    void *code = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED)
        return 1;
    if (argc > 1) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0 || mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED)
            return 2;
    }
    printf("%p\n", code);
    fflush(stdout);
    while (getchar() != EOF) {
    }
    return 0;
}
