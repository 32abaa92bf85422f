// Two functions leak through operator new (and new[]); without --focus each
// must be its own site, named after it. The C++ runtime's emergency
// exception pool is allocated at start-up and suppressed by default.
#include <cstdio>
#include <new>

void *volatile sink;

struct Node {
    char data[40];
};

__attribute__((noinline)) Node *leak_nodes() {
    return new Node(); // @site leak_nodes heap 3 40
}

__attribute__((noinline)) int *leak_array() {
    int *p = new (std::nothrow) int[10]; // @site leak_array heap 5 40
    sink = p;                            // (not a tail call: leak_array keeps its frame)
    return p;
}

int main() {
    for (int i = 0; i < 3; i++)
        std::printf("%p\n", static_cast<void *>(leak_nodes()));
    for (int i = 0; i < 5; i++)
        std::printf("%p\n", static_cast<void *>(leak_array()));
    try {
        throw 1;
    } catch (int) {
    }
    return 0;
}
