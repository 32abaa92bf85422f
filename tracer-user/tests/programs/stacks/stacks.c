/* Leaks behind the code a stack walker finds hardest: glibc's frameless
 * stdio, locale and NSS code, the dynamic linker (dlopen), deep recursion, a
 * 64 KiB frame, a signal handler, a shared library, and allocating
 * functions whose frames tail calls remove (one, and a chain of two). Built at -O0, -O2 and
 * -O2 -fomit-frame-pointer; the kernel oracle test compares every site with
 * valgrind's. argv[1]: the library to dlopen. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <locale.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#define NOINLINE __attribute__((noinline))

void lib_leak(int n);

static volatile long sink;

/* Calls that are not the last thing done: no tail call here, only in make(). */
NOINLINE static void say(void) { sink += printf("stacks: %d\n", 42); }

NOINLINE static void localise(void) { sink += (long)setlocale(LC_ALL, ""); }

NOINLINE static void resolve(void) {
    struct addrinfo *ai = NULL;
    if (getaddrinfo("localhost", "80", NULL, &ai) == 0)
        sink += ai->ai_family;
}

NOINLINE static void load(const char *path) {
    void *h = dlopen(path, RTLD_NOW);
    if (!h)
        return;
    void (*leak)(void) = (void (*)(void))dlsym(h, "dl_leak");
    if (leak)
        leak();
}

NOINLINE static int recurse(int depth) {
    if (depth == 0) {
        char *p = malloc(24);
        p[0] = 1;
        sink += (long)p;
        return 1;
    }
    int r = recurse(depth - 1);
    sink += r;
    return r + 1;
}

NOINLINE static void big_frame(void) {
    char buf[65536];
    memset(buf, 'x', sizeof buf);
    buf[300] = 0;
    sink += (long)strdup(buf + 100);
}

/* At -O2 this is `jmp calloc`: no frame of its own is left on the stack. */
NOINLINE static void *make(size_t n) { return calloc(1, n); }

NOINLINE static void use_make(void) { sink += (long)make(40); }

/* Two tail calls in a row at -O2: relay() is `jmp make_chained`, which is
 * `jmp calloc`; neither leaves a frame. noipa: no clone, no merged twin. */
__attribute__((noipa)) static void *make_chained(size_t n) { return calloc(2, n); }

__attribute__((noipa)) static void *relay(size_t n) { return make_chained(n + 8); }

NOINLINE static void use_relay(void) { sink += (long)relay(56); }

NOINLINE static void open_handles(void) {
    sink += socket(AF_INET, SOCK_STREAM, 0);
    sink += timerfd_create(CLOCK_MONOTONIC, 0);
}

static void on_signal(int sig) {
    char *p = malloc(56);
    p[0] = (char)sig;
    sink += (long)p;
}

int main(int argc, char **argv) {
    say();
    localise();
    resolve();
    if (argc > 1)
        load(argv[1]);
    recurse(40);
    big_frame();
    use_make();
    use_relay();
    open_handles();
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    lib_leak(3);
    return 0;
}
