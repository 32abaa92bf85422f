/* Prints the addresses of known code, then stops itself so the test can read
 * its maps. Lines marked @line are what the test expects. */
#include <signal.h>
#include <stdio.h>

int lib_function(int x);

static inline __attribute__((always_inline)) int inlined_helper(int x) {
    return x * x + 7; /* @line inlined_helper */
}

__attribute__((noinline)) void *outer_function(int x) {
    volatile int v = inlined_helper(x);
    (void)v;
    return __builtin_return_address(0);
}

__attribute__((noinline)) void *here(void) {
    return __builtin_extract_return_addr(__builtin_return_address(0)); /* the caller's next instruction */
}

int main(void) {
    void *in_main = here(); /* @line main_call */
    printf("main_call %p\n", in_main);
    printf("outer_function %p\n", (void *)outer_function);
    printf("lib_function %p\n", (void *)lib_function);
    fflush(stdout);
    raise(SIGSTOP);
    return lib_function(1) + (outer_function(2) != 0);
}
