/* A pre-fork server in miniature (kernel_prefork.rs): the master allocates
 * its configuration and a few blocks it keeps, loses one, opens a log, a
 * channel (socketpair) and a spare descriptor, then forks N workers (argv[1],
 * default 3). Each worker frees two inherited blocks, closes the log and its
 * end of the channel, drops the configuration the master still holds (lost
 * in the worker: definitely, with what it points to indirectly), leaks a
 * block of its own, keeps another, and exits. The master waits for them all
 * and exits holding what it allocated. No stdio: every block is the
 * program's own. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The compiler may not drop a store the program never reads again. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")
#define NOINLINE __attribute__((noinline))

struct conf {
    char *name;
    char *buf;
};

struct conf *conf;   /* the master's configuration */
void *kept[4];       /* the master keeps them; each worker frees two */
void *worker_own;    /* a worker's block it keeps */
int log_fd, chan[2], spare_fd;

NOINLINE static void lose(size_t n) {
    void *p = malloc(n);
    KEEP(p);
}

NOINLINE static void master_setup(void) {
    conf = malloc(sizeof *conf);
    conf->name = strdup("prefork-master");
    conf->buf = malloc(256);
    for (int i = 0; i < 4; i++)
        kept[i] = malloc(64 + 16 * i);
    lose(48);
    log_fd = open("/dev/null", O_WRONLY | O_APPEND);
    spare_fd = open("/dev/null", O_RDONLY);
    if (log_fd < 0 || spare_fd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, chan) != 0)
        _exit(2);
}

NOINLINE static void worker(int n) {
    free(kept[0]);
    free(kept[2]);
    kept[0] = kept[2] = NULL;
    close(log_fd);
    close(chan[0]);
    conf = NULL;
    lose(24 + 8 * n);
    worker_own = malloc(512);
    _exit(0);
}

int main(int argc, char **argv) {
    int workers = argc > 1 ? atoi(argv[1]) : 3;
    master_setup();
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            worker(i);
    }
    close(chan[1]);
    int status, failed = 0;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed;
}
