/* A process leaktrace loads its recorder into: a thread allocates and
 * frees in a loop (sleeping in nanosleep) while the main thread waits in
 * read() on standard input and reports each read, so a test can tell the
 * blocked call went on normally after the injection. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *volatile kept;

static void *churn(void *arg) {
  (void)arg;
  struct timespec pause = {0, 2 * 1000 * 1000};
  for (unsigned i = 0;; i++) {
    void *p = malloc(64 + i % 64);
    kept = p;
    nanosleep(&pause, NULL);
    free(kept);
  }
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, churn, NULL);
  printf("malloc %p\n", dlsym(RTLD_DEFAULT, "malloc"));
  fflush(stdout);
  char buf[256];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n < 0) {
      perror("read");
      return 2;
    }
    if (n == 0)
      return 0;
    buf[n] = 0;
    printf("read %zd: %s", n, buf);
    fflush(stdout);
  }
}
