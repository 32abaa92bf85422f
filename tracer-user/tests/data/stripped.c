/* Built with -rdynamic and stripped (strip --strip-all): exported_before and
 * exported_after keep their dynamic symbols (with sizes), hidden_leak, a
 * static function placed between them, keeps none. Prints the functions'
 * addresses and a return address inside hidden_leak, then stops itself. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void *here(void) {
    return __builtin_return_address(0);
}

__attribute__((noinline)) int exported_before(int x) {
    return x * 3 + 1;
}

__attribute__((noinline, used)) static void *hidden_leak(size_t n) {
    void *p = malloc(n);
    void *at = here(); /* a call site 30+ bytes past exported_before's end */
    printf("hidden_call %p\n", at);
    return p;
}

__attribute__((noinline)) int exported_after(int x) {
    return x * 5 + 2;
}

int main(void) {
    printf("exported_before %p\n", (void *)exported_before);
    printf("exported_after %p\n", (void *)exported_after);
    printf("hidden_leak %p\n", (void *)hidden_leak);
    void *leak = hidden_leak(32);
    fflush(stdout);
    raise(SIGSTOP);
    free(leak);
    return exported_before(1) + exported_after(2);
}
