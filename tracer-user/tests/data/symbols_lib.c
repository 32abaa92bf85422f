/* A shared library for the symbolizer tests. */
__attribute__((noinline)) int lib_function(int x) {
    return x * 3 + 1; /* @line lib_function */
}
