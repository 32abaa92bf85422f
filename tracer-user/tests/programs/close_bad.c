/* A clean program that closes descriptors it never had: close(-1), a number
 * past any table, and one never opened. Nothing leaks and nothing is lost. */
#include <unistd.h>

int main(void) {
    close(-1);
    close(1 << 30);
    close(977);
    return 0;
}
