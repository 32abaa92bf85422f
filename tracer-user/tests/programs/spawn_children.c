/* spawn_children PROGRAM ARG... : runs PROGRAM ARG twice, each in a child
 * forked and exec'd with this process's own environment, one after the
 * other, then allocates a block of its own and keeps it. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile kept;

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    for (int i = 0; i < 2; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[1], argv + 1);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    kept = malloc(77); /* @site main heap 1 77 */
    return 0;
}
