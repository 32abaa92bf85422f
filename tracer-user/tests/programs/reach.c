/* Blocks of each of valgrind memcheck's leak kinds, one allocation a line,
 * each marked `@block NAME CLASS`: the oracle test (kernel_reach.rs) checks
 * that leaktrace's class for every one equals valgrind's. A thread holds a
 * block on its stack and another in its TLS, blocked in read() when main
 * calls exit(): the scan runs with every thread at its exit stop. Another
 * thread has ended by then, its stack kept by glibc. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/* The compiler may not drop a store the program never reads again. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

struct pair {
    struct pair *other;
    char pad[40];
};

void *global_block;        /* held by a global */
char *interior;            /* only an interior pointer */
struct pair *chain;        /* global -> pair -> block */
char *interior_chain;      /* interior -> pair -> block: possibly */
__thread void *tls_block;  /* each thread's own */
static pthread_barrier_t ready;
static int never[2];

__attribute__((noinline)) static void lose(void) {
    void *p = malloc(100); /* @block lost_outright definite */
    KEEP(p);
}

__attribute__((noinline)) static void lose_pair(void) {
    struct pair *a = malloc(sizeof(struct pair)); /* @block lost_pair definite */
    a->other = malloc(48); /* @block pointed_to_by_lost indirect */
    KEEP(a);
}

/* Blocks made by functions that return them (a library's constructors):
 * a lost one that alone holds another. */
__attribute__((noinline)) static struct pair *make_pair(void) {
    struct pair *p = malloc(sizeof(struct pair)); /* @block made_head definite */
    KEEP(p);
    return p;
}

__attribute__((noinline)) static void *make_block(size_t n) {
    void *p = malloc(n); /* @block made_tail indirect */
    KEEP(p);
    return p;
}

__attribute__((noinline)) static void lose_made(void) {
    struct pair *p = make_pair();
    p->other = make_block(88);
    KEEP(p);
}

/* Lost blocks whose only pointer was left in memory the allocator hands out
 * again, in bytes the program never writes after that: undefined for
 * valgrind, which never takes them for a pointer (leaktrace's recorder
 * clears them). glibc gives a freed block of a size back to the next
 * request of that size (its thread cache keeps its own words in the first
 * 16 bytes). */
void *reused;  /* the memory of a freed block */
void **regrown; /* the same, then grown in place past what it asked for */

__attribute__((noinline)) static void leave_stale(void) {
    void **s = malloc(64);
    s[4] = malloc(104); /* @block stale_in_reused definite */
    KEEP(s);
    free(s);
    reused = malloc(64); /* @block reused reachable */
    KEEP(reused);
}

__attribute__((noinline)) static void leave_stale_tail(void) {
    void **s = malloc(24);
    s[2] = malloc(112); /* @block stale_in_tail definite */
    KEEP(s);
    free(s);
    /* 16 bytes asked: its third word is the allocator's slack, then the block's. */
    regrown = malloc(16);
    regrown = realloc(regrown, 24); /* @block regrown reachable */
    KEEP(regrown);
}

__attribute__((noinline)) static void hold(void) {
    global_block = malloc(300); /* @block global reachable */
    interior = (char *)malloc(400) + 16; /* @block interior possible */
    chain = malloc(sizeof(struct pair)); /* @block chain_head reachable */
    chain->other = malloc(56); /* @block chain_tail reachable */
    struct pair *p = malloc(sizeof(struct pair)); /* @block interior_head possible */
    p->other = malloc(72); /* @block after_interior possible */
    interior_chain = (char *)p + 32;
    tls_block = malloc(500); /* @block main_tls reachable */
    KEEP(p);
}

static void *holder(void *arg) {
    void *volatile held = malloc(200); /* @block thread_stack reachable */
    tls_block = malloc(210); /* @block thread_tls reachable */
    pthread_barrier_wait(&ready);
    char c;
    /* Blocks until the process exits. */
    if (read(never[0], &c, 1) < 0)
        return NULL;
    return held;
}

/* Ends at once: glibc keeps its stack, TLS and control block at the top,
 * for the next thread; valgrind reads it from the thread's last stack
 * pointer up, so what its TLS holds is still reachable, and its DTV
 * (pointed to one entry past its start) possibly lost. */
static void *ender(void *arg) {
    tls_block = malloc(220); /* @block ended_tls reachable */
    return arg;
}

int main(void) {
    if (pipe(never) != 0)
        return 1;
    pthread_barrier_init(&ready, NULL, 2);
    lose();
    lose_pair();
    lose_made();
    leave_stale();
    leave_stale_tail();
    hold();
    pthread_t t;
    if (pthread_create(&t, NULL, holder, NULL) != 0) /* @block thread_dtv possible */
        return 1;
    pthread_barrier_wait(&ready);
    /* After the holder, so that glibc cannot hand it the ended one's stack. */
    pthread_t e;
    if (pthread_create(&e, NULL, ender, NULL) != 0) /* @block ended_dtv possible */
        return 1;
    pthread_join(e, NULL);
    exit(0);
}
