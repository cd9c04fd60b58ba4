// Compile-time probe: the umbrella header alone (scripts/compile-times).
#include <redkit/redkit.hpp>

int main() { return 0; }
