/* A clean program that closes descriptors it never opened: close(-1), a
 * number past any table and one never opened (the kernel refuses all three:
 * nothing was released), and its inherited standard input (released, but
 * never seen opened). Nothing leaks and nothing is lost. */
#include <unistd.h>

int main(void) {
    close(-1);
    close(1 << 30);
    close(977);
    close(0);
    return 0;
}
