// C++ leaks through operator new, inlined library code and a shared_ptr cycle.
#include <memory>
#include <string>
#include <vector>

#define NOINLINE __attribute__((noinline))

static volatile long sink;

struct Node {
    std::shared_ptr<Node> next;
    int value;
};

NOINLINE static void leak_vector() {
    auto *v = new std::vector<int>(100, 1);
    sink += v->size();
}

NOINLINE static void leak_string() {
    auto *s = new std::string(200, 'x');
    sink += s->size();
}

NOINLINE static void leak_cycle() {
    auto a = std::make_shared<Node>();
    auto b = std::make_shared<Node>();
    a->next = b;
    b->next = a;
}

int main() {
    for (int i = 0; i < 3; i++)
        leak_vector();
    leak_string();
    leak_cycle();
    return 0;
}
